package redisrelay

import "github.com/redis/go-redis/v9"

// The Lua scripts below are the only code that writes a document's keys.
// Each runs atomically in Redis, so "check, then write" is one step.
//
// The meta hash holds: e (epoch), v (head version: the version the next
// record gets), sv (version of the snapshot in the snap key, 0 for none),
// r (the run_id of the Redis process that set the epoch; a different
// run_id means Redis restarted or failed over since), and l (the
// lineage: "epoch:base,..." newest first, meaning the current epoch's
// history equals that epoch's below base).
//
// A script stops before its first write when a check fails, so a failed
// check leaves nothing half done. Numbers are Lua doubles, exact below
// 2^53 (maxNumber); string.format('%d') writes them without exponent.

const luaPrelude = `
local function sid(v) return string.format('%d-1', v) end
local function num(v) return string.format('%d', v) end
local function runid() return string.match(redis.call('INFO', 'server'), 'run_id:(%x+)') end
-- trim drops stream entries below min(head-tail, sv): at least the last
-- tail records, and all since the snapshot, are kept, but never more
-- than maxTail.
local function trim(log, head, sv, tail, maxTail)
  local keep = math.max(math.min(head - tail, sv), head - maxTail)
  if keep > 0 then redis.call('XTRIM', log, 'MINID', sid(keep)) end
end
-- setseq notes that src committed seq at version v, unless the hash has
-- a later seq for src already.
local function setseq(seqs, src, seq, v)
  if src == '' then return end
  local e = redis.call('HGET', seqs, src)
  if e and tonumber(string.match(e, '^(%d+) ')) > tonumber(seq) then return end
  redis.call('HSET', seqs, src, seq .. ' ' .. num(v))
end
-- append adds the records ARGV[at], ARGV[at+3], ... (triples of src,
-- seq, record) at versions first, first+1, ... and returns them.
local function append(log, seqs, first, at)
  local recs = {}
  local i = 0
  for a = at, #ARGV, 3 do
    local v = first + i
    redis.call('XADD', log, sid(v), 'r', ARGV[a + 2])
    setseq(seqs, ARGV[a], ARGV[a + 1], v)
    i = i + 1
    recs[i] = ARGV[a + 2]
  end
  return recs
end
-- publish sends a doorbell. writer, when given, leads it
-- ({"w":writer,...}), so that the writer's own subscriber can pass over
-- its own commits without decoding them; the caller made it fit to go
-- into JSON as it is (relay.go's writerName).
local function publish(cmd, channel, epoch, recs, writer)
  if cmd ~= '' then
    local w = ''
    if writer and writer ~= '' then
      w = '"w":"' .. writer .. '",'
    end
    redis.call(cmd, channel, '{' .. w .. '"e":"' .. epoch .. '","r":[' .. table.concat(recs, ',') .. ']}')
  end
end
`

// commitScript orders a batch of records.
//
//	KEYS: meta, log, seqs, channel, turn
//	ARGV: epoch, expect, tail, maxTail, publish command, writer ('' to
//	      ignore turns), turn ttl (ms), reserve ('1': take a turn on a
//	      conflict), then per record: src, seq, record
//
// Replies: {'absent'} | {'epoch', e} | {'restarted', e} |
// {'behind', head} | {'again', expect} (this very batch is already at
// expect: a repeat) | {'dup', v} | {'stale', seq, v} (first record's seq
// is below its src's last, committed at v) | {'conflict', head[,
// entries]} (the missed entries when they are at most readPage) |
// {'wait', head, pttl} (the next commit is another writer's turn) |
// {'committed', expect}.
//
// Turns (turn.go; the turn key is a hash: h the holder, n the next
// writer): a writer that loses a race (conflict) with reserve set takes
// the next commit's turn, or the one after if another writer holds it; while a turn is
// held, only its holder commits at the head, another writer that tries
// is answered 'wait' and made next, and the holder's commit hands the
// turn to the next writer. The hash expires ttl after its last change,
// so a writer that died or gave up holds nobody up for longer.
var commitScript = redis.NewScript(luaPrelude + `
local m = redis.call('HMGET', KEYS[1], 'e', 'v', 'sv', 'r')
if not m[1] then return {'absent'} end
if m[1] ~= ARGV[1] then return {'epoch', m[1]} end
if m[4] ~= runid() then return {'restarted', m[1]} end
local head = tonumber(m[2])
local expect = tonumber(ARGV[2])
local n = (#ARGV - 8) / 3
-- The same records already at the same versions: go-redis retried the
-- script after losing its reply, or the caller repeated a call whose
-- outcome it did not learn. Answer as the first run did.
if head >= expect + n then
  local got = redis.call('XRANGE', KEYS[2], sid(expect), sid(expect + n - 1))
  local same = #got == n
  for i = 1, n do
    if not same then break end
    local f = got[i][2]
    same = f[1] == 'r' and f[2] == ARGV[3 * i + 8]
  end
  if same then return {'again', expect} end
end
if ARGV[9] ~= '' then
  local e = redis.call('HGET', KEYS[3], ARGV[9])
  if e then
    local s, v = string.match(e, '^(%d+) (%d+)$')
    local seq = tonumber(ARGV[10])
    if seq == tonumber(s) then return {'dup', tonumber(v)} end
    if seq < tonumber(s) then return {'stale', tonumber(s), tonumber(v)} end
  end
end
if head < expect then return {'behind', head} end
local me = ARGV[6]
local turn = {}
if me ~= '' then turn = redis.call('HMGET', KEYS[5], 'h', 'n') end
if head > expect then
  -- Lost a race (again, when reserve is set): the next commit is this
  -- writer's turn; if another writer holds it, the one after.
  if me ~= '' and ARGV[8] == '1' then
    local took = true
    if not turn[1] or turn[1] == me then
      redis.call('HSET', KEYS[5], 'h', me)
    elseif not turn[2] then
      redis.call('HSET', KEYS[5], 'n', me)
    else
      took = false
    end
    if took then redis.call('PEXPIRE', KEYS[5], ARGV[7]) end
  end
  -- The records the caller missed come with the answer when they are
  -- at most a read page (readPage, 1000), saving the round trip of a
  -- Read on a busy document.
  if head - expect > 1000 then return {'conflict', head} end
  return {'conflict', head, redis.call('XRANGE', KEYS[2], sid(expect), sid(head - 1))}
end
if me ~= '' and turn[1] then
  if turn[1] ~= me then
    -- Another writer's turn: this one (if it reserves) is next, unless
    -- a third is.
    if not turn[2] and ARGV[8] == '1' then
      redis.call('HSET', KEYS[5], 'n', me)
    end
    return {'wait', head, redis.call('PTTL', KEYS[5])}
  end
  -- This writer's turn ends with its commit; the next one's begins.
  if turn[2] and turn[2] ~= me then
    redis.call('HSET', KEYS[5], 'h', turn[2])
    redis.call('HDEL', KEYS[5], 'n')
    redis.call('PEXPIRE', KEYS[5], ARGV[7])
  else
    redis.call('DEL', KEYS[5])
  end
end
local recs = append(KEYS[2], KEYS[3], expect, 9)
head = expect + n
redis.call('HSET', KEYS[1], 'v', num(head))
trim(KEYS[2], head, tonumber(m[3]) or 0, tonumber(ARGV[3]), tonumber(ARGV[4]))
publish(ARGV[5], KEYS[4], m[1], recs, me)
return {'committed', expect}
`)

// headScript reads the meta hash, whether Redis restarted since the
// epoch began, and the clients noted as holding a replaced history
// (replaced.go), which every sync needs too: one round trip for both.
//
//	KEYS: meta, replaced
//
// Replies: {} (absent) | {e, v, sv, l, restarted (0 or 1), replaced
// (flat field/value list)}.
var headScript = redis.NewScript(luaPrelude + `
local m = redis.call('HMGET', KEYS[1], 'e', 'v', 'sv', 'r', 'l')
if not m[1] then return {} end
local restarted = 0
if m[4] ~= runid() then restarted = 1 end
return {m[1], m[2], m[3] or '0', m[5] or '', restarted, redis.call('HGETALL', KEYS[2])}
`)

// readScript reads records [from, to] (inclusive IDs), at most count.
//
//	KEYS: meta, log
//	ARGV: epoch ('' for any), from, to, count
//
// Replies: {'absent'} | {'epoch', e} | {'ok', head, entries}.
var readScript = redis.NewScript(luaPrelude + `
local m = redis.call('HMGET', KEYS[1], 'e', 'v')
if not m[1] then return {'absent'} end
if ARGV[1] ~= '' and m[1] ~= ARGV[1] then return {'epoch', m[1]} end
return {'ok', tonumber(m[2]), redis.call('XRANGE', KEYS[2], sid(tonumber(ARGV[2])), sid(tonumber(ARGV[3])), 'COUNT', ARGV[4])}
`)

// loadScript reads what a node needs to open a document it does not
// have: meta, snapshot, seqs and the records since the snapshot.
//
//	KEYS: meta, log, seqs, snap
//
// Replies: {} (absent) | {e, v, sv, l, restarted, snap or false, seqs
// (flat field/value list), entries}.
var loadScript = redis.NewScript(luaPrelude + `
local m = redis.call('HMGET', KEYS[1], 'e', 'v', 'sv', 'r', 'l')
if not m[1] then return {} end
local restarted = 0
if m[4] ~= runid() then restarted = 1 end
local sv = tonumber(m[3])
return {m[1], m[2], m[3], m[5] or '', restarted, redis.call('GET', KEYS[4]),
  redis.call('HGETALL', KEYS[3]), redis.call('XRANGE', KEYS[2], sid(sv), '+')}
`)

// initScript seeds a document Redis has no state for.
//
//	KEYS: meta, log, seqs, snap, channel
//	ARGV: epoch, lineage, head, snapshot version, snapshot ('' for
//	      none), tail, maxTail, publish command, nseqs, then nseqs pairs
//	      (src, "seq version"), then the first record's version, then
//	      per record: src, seq, record
//
// Replies: {'exists', e} | {'init', epoch}.
var initScript = redis.NewScript(luaPrelude + `
local e = redis.call('HGET', KEYS[1], 'e')
if e then return {'exists', e} end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
local ns = tonumber(ARGV[9])
for i = 1, ns do redis.call('HSET', KEYS[3], ARGV[8 + 2 * i], ARGV[9 + 2 * i]) end
local at = 10 + 2 * ns
append(KEYS[2], KEYS[3], tonumber(ARGV[at]), at + 1)
if ARGV[5] ~= '' then redis.call('SET', KEYS[4], ARGV[5]) end
redis.call('HSET', KEYS[1], 'e', ARGV[1], 'v', ARGV[3], 'sv', ARGV[4], 'r', runid(), 'l', ARGV[2])
trim(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[6]), tonumber(ARGV[7]))
publish(ARGV[8], KEYS[5], ARGV[1], {})
return {'init', ARGV[1]}
`)

// renewScript starts a new epoch continuing the caller's, after Redis
// restarted or lost records: the caller's records Redis lacks are put
// back at their versions first.
//
//	KEYS: meta, log, seqs, channel
//	ARGV: epoch, new epoch, tail, maxTail, publish command, first
//	      version, then per record: src, seq, record
//
// Records below head are skipped. Replies: {'absent'} | {'epoch', e} |
// {'current', e, head, lineage} (nothing to renew) | {'gap', head} (the
// records start above head) | {'renewed', new epoch, head, lineage}. The
// lineage is the one the meta hash holds for the epoch replied, so the
// caller notes what Redis wrote rather than working it out again.
var renewScript = redis.NewScript(luaPrelude + `
local m = redis.call('HMGET', KEYS[1], 'e', 'v', 'sv', 'r', 'l')
if not m[1] then return {'absent'} end
if m[1] ~= ARGV[1] then return {'epoch', m[1]} end
local rid = runid()
local head = tonumber(m[2])
local first = tonumber(ARGV[6])
local n = (#ARGV - 6) / 3
if n > 0 and first > head then return {'gap', head} end
-- Records below head are in Redis already: same epoch, same history.
local skip = 0
if n > 0 then skip = math.max(0, math.min(n, head - first)) end
n = n - skip
if n == 0 and m[4] == rid then return {'current', m[1], head, m[5] or ''} end
local recs = append(KEYS[2], KEYS[3], head, 7 + 3 * skip)
head = head + n
local l = ARGV[1] .. ':' .. num(head)
if m[5] and m[5] ~= '' then l = l .. ',' .. m[5] end
local kept, count = {}, 0
for f in string.gmatch(l, '[^,]+') do
  if count == 64 then break end -- maxLineage
  count = count + 1
  kept[count] = f
end
local lineage = table.concat(kept, ',')
redis.call('HSET', KEYS[1], 'e', ARGV[2], 'v', num(head), 'r', rid, 'l', lineage)
trim(KEYS[2], head, tonumber(m[3]) or 0, tonumber(ARGV[3]), tonumber(ARGV[4]))
publish(ARGV[5], KEYS[4], ARGV[2], recs)
return {'renewed', ARGV[2], head, lineage}
`)

// snapshotScript keeps a snapshot in Redis if it is newer than the one
// there, trims the stream below it, and drops the seq entries of srcs
// whose last record is more than tail versions older than the oldest
// record the stream keeps (base.go says why that is safe).
//
//	KEYS: meta, log, snap, seqs
//	ARGV: epoch, version, snapshot, tail, maxTail
//
// Replies: {'absent'} | {'epoch', e} | {'restarted', e} |
// {'ahead', head} | {'old', sv} | {'saved', version}.
var snapshotScript = redis.NewScript(luaPrelude + `
local m = redis.call('HMGET', KEYS[1], 'e', 'v', 'sv', 'r')
if not m[1] then return {'absent'} end
if m[1] ~= ARGV[1] then return {'epoch', m[1]} end
if m[4] ~= runid() then return {'restarted', m[1]} end
local head, sv, v = tonumber(m[2]), tonumber(m[3]), tonumber(ARGV[2])
if v > head then return {'ahead', head} end
if v <= sv then return {'old', sv} end
redis.call('SET', KEYS[3], ARGV[3])
redis.call('HSET', KEYS[1], 'sv', ARGV[2])
local tail = tonumber(ARGV[4])
trim(KEYS[2], head, v, tail, tonumber(ARGV[5]))
local floor = math.max(math.min(head - tail, v), head - tonumber(ARGV[5])) - tail
if floor > 0 then
  local all = redis.call('HGETALL', KEYS[4])
  for i = 1, #all, 2 do
    local at = tonumber(string.match(all[i + 1], ' (%d+)$'))
    if at and at < floor then redis.call('HDEL', KEYS[4], all[i]) end
  end
end
return {'saved', v}
`)
