package redisrelay

// PipeState returns how many commit calls r has in flight and queued
// (pipeline.go), for tests that must wait for a queue to form.
func PipeState(r *Relay) (inFlight, queued int) {
	r.pipe.mu.Lock()
	defer r.pipe.mu.Unlock()
	return r.pipe.inFlight, len(r.pipe.queue)
}

// MaxInFlight is how many commit calls go to Redis at once before the
// next ones queue (pipeline.go).
const MaxInFlight = maxInFlight

// DecodeNote reads a node's epoch note (cluster.go's encodeNote).
func DecodeNote(note string) (epoch string, lineage []Fork) { return decodeNote(note) }
