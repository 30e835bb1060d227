// Package redisrelay makes Redis the commit point, shared log and
// doorbell of a coedit cluster (DESIGN.md §7). Every node runs sessions
// for any document; Redis decides the one order of each document's ops.
//
// A node uses it through Cluster (cluster.go): NewCluster over a Relay and
// the node's store gives the collab.Hub its Relay (a collab.ClusterRelay)
// and Sequencer. Each session then follows Redis's history of its
// document: it syncs before it answers (follow.go: seed an empty Redis,
// renew an epoch after a restart, catch up from the stream), commits
// under its epoch, and offers records a replaced history lost again
// (reoffer.go). The rest of this comment is about Relay, the Redis side.
//
// Relay (New, Options) has these methods, by use:
//
//   - Commit orders a batch of records at an expected version, in one Lua
//     script: Committed at v, Duplicate (the first record's src and seq
//     were committed at v), or Conflict (here are the records you
//     missed). It is idempotent: go-redis may run a script again when its
//     reply was lost, and a caller repeats a call whose outcome it did
//     not learn (ErrUnavailable); the same records at the same versions
//     are answered Committed, never written twice.
//   - Head and Load tell a joining session the document's epoch and head
//     (Load also the snapshot, the records since it and the seqs, for a
//     node that never had the document). Read fills gaps and catches up.
//   - Subscribe delivers doorbells: each commit publishes its records on
//     the document's channel. Pub/sub is at most once, so a doorbell is a
//     hint: the subscriber applies records in version order, reads a gap
//     with Read, skips records it has, and re-checks its head when the
//     Handler's Resync is called (after every (re)subscription).
//   - Init, Renew and SaveSnapshot seed, repair and compact a document's
//     state in Redis (a Cluster saves snapshots as documents grow).
//
// # Keys
//
// Each document has four keys and a channel, all under the hash tag of
// the document, so that they share one Redis Cluster slot (a script may
// touch them together, a sharded publish stays on that node):
//
//	<prefix>{<collection>.<id>}:meta  hash: e epoch, v head, sv snapshot version,
//	                                  r run_id of Redis when the epoch began, l lineage
//	<prefix>{<collection>.<id>}:log   stream: the record at version v has ID "<v>-1"
//	<prefix>{<collection>.<id>}:seqs  hash: src -> "<last seq> <its version>"
//	<prefix>{<collection>.<id>}:snap  string: the latest snapshot Redis keeps
//	<prefix>{<collection>.<id>}:ch    the doorbell channel
//
// Presence (presence.go) and the cluster's document list (list.go) have
// keys and channels of their own: <prefix>{<tag>}:pres (pub/sub only),
// <prefix>node:<origin> (a node's heartbeat), <prefix>docs and
// <prefix>docs:<collection> (sorted sets) and <prefix>{<tag>}:info.
//
// In the tag, '%', '.', '{' and '}' of the collection and id are written
// %25, %2E, %7B, %7D, so a '}' in an id cannot end the tag and a '.'
// cannot make two keys one. The stream keeps at least Options.TailLen
// records and everything since the snapshot (up to MaxTailLen).
//
// # Snapshots and the tail
//
// A Cluster keeps each document's state in Redis bounded (base.go): the
// node that commits saves its store's latest snapshot to Redis when
// Redis's is ClusterOptions.SnapshotEvery (TailLen/2) versions old, and
// SaveSnapshot trims the stream to the newest TailLen records and the
// seqs hash to the srcs whose last record is at most TailLen versions
// older than the oldest record kept. A node less than TailLen behind
// reads the records it lacks; one further behind (down for long, or new)
// installs Redis's snapshot as the base of its store's log (BaseStore)
// and reads the records after it. MaxTailLen is only a cap for when no
// node manages to save a snapshot: it may then cut records past the
// snapshot, and nodes behind the stream cannot catch up until the next
// save.
//
// # Epochs
//
// A document's state in Redis carries a random epoch: the name of one
// linear history. Within an epoch a version is given to one op only.
// Commit refuses (*EpochError, retryable) when the caller's epoch is
// not the document's, when Redis has no state (EpochAbsent), and when
// Redis restarted or failed over since the epoch began (EpochRestarted:
// the script compares Redis's run_id with the one stored at the epoch's
// start, so a Redis that came back with a lost tail cannot hand out a
// version a second time before someone checked). The run_id comes from
// INFO inside the script (about 5 µs per write), so the Redis user needs
// the INFO command, and scripts must run on the master, not a replica.
//
// # Redis loss: the reseed protocol
//
// Each node keeps its own durable log (bbolt), which is always a prefix
// of the history of the epoch it holds. A session remembers its epoch;
// on an *EpochError it stops taking writes (they fail retryably) and:
//
//  1. EpochAbsent (Redis came back empty): Init with its own state (Seed:
//     Prev = its epoch, its snapshot, records and seqs). Init sets a new
//     epoch only if Redis still has nothing, so of several nodes racing
//     exactly one wins; the losers continue at step 3.
//  2. EpochRestarted or EpochBehind (Redis may have lost a tail): Renew
//     with its records from Redis's head on. They are put back at their
//     own versions (same epoch, same history), and a new epoch begins
//     whose lineage says it equals the old one below the new head.
//     If another node renewed first, Renew answers EpochChanged: step 3.
//     A node with nothing to put back (its log is a prefix of the
//     restarted epoch's history) does not renew when it only reads: it
//     reads the epoch as it is, and renews at its first commit, which
//     meets the restart. So a node that holds records Redis lost renews
//     first unless another node commits to the document before it does.
//  3. EpochChanged: Head, then shared, ok := head.Shared(its epoch).
//     Records below shared are the same in both histories. If the node's
//     log ends at or below shared, nothing of it was lost: it adopts the
//     new epoch and catches up with Read (the common case after an AOF
//     always restart). Otherwise its records from shared on belong to a
//     history that was replaced (Redis lost them and another node moved
//     on first): the node first offers those records again as an
//     offline client would: each as a submission at its old version
//     with its src and seq, so Commit's (src, seq) check drops the ones
//     Redis has and the others are transformed and committed at new
//     versions. Then it forks: it notes the clients whose state may come
//     from the replaced records in the document's "replaced" hash, which
//     every node reads when it syncs and refuses their copies with
//     collab.ErrHistoryReplaced until they fetch anew (replaced.go),
//     drops its log from shared on and those clients, and catches up
//     with Redis's (Read, or Load past the tail). If Redis no longer
//     keeps its records from shared on (it moved on past its tail
//     since), there is nothing to transform
//     them over: those the seq table does not show in the history are
//     lost (logged, counted), and the node forks and installs Redis's
//     snapshot. When !ok (the lineage lost the epoch, or the node's
//     records carry no note: a single node's store, a copy of another
//     node's, a crash before the note) it compares its records with
//     Redis's where both hold them (nohistory.go): those below the
//     first that differs are the history's, the rest it offers again
//     as above; when none differs, its records past Redis's head are
//     committed at their own versions if Redis's head has not moved,
//     else it compares again. Records that differ from the first
//     compared on cannot be offered above version 0 (what they were
//     made on is unknown): Sync fails and says so. When no record
//     compares (all lie below what Redis keeps or above its head, or
//     none follows the store's base) it counts its records lost, as
//     nothing shows they are the history's, forks at its base and
//     installs Redis's snapshot, if Redis has one past its head; else
//     Sync fails. A node with no records follows at once.
//
// So no (epoch, version) pair is ever given to two ops, no node applies
// records of another history (doorbells, Read and Commit carry the
// epoch), and an acknowledged op is in Redis, or in some node's log
// from which it is offered again. With AOF and appendfsync always,
// Redis loses nothing it acknowledged, a restart ends in step 2 and 3
// without any replaced records, and the cost is a few round trips per
// open document.
//
// Cluster runs this protocol from the session's goroutine (follow.go).
// Each node's store notes the epoch its records belong to
// (EpochStore), so a node that restarts knows its history. A node offers
// its records again before it drops them (collab.Truncater), so a crash
// midway loses nothing, and offering again is idempotent: records Redis
// has (same src and seq) are skipped.
//
// # Not handled yet
//
// In a Redis Cluster, moving a slot to another node while its documents
// are subscribed makes Redis drop those subscriptions; they are logged
// but not re-established until the pub/sub connection reconnects.
//
// A node that installed a base holds no history before it: its reads of
// older versions fail with collab.ErrOpsMissing, and if Redis is later
// reseeded from that node it offers its history from the base on.
package redisrelay
