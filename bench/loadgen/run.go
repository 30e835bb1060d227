package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// gen is one run's shared state. The counters and histograms are written
// by every client's reader goroutine, so they are atomic.
type gen struct {
	o        Options
	collJSON []byte

	measuring atomic.Bool // inside the measurement window
	stopping  atomic.Bool // the load has ended: submit nothing new
	closing   atomic.Bool // connections are being closed on purpose

	ack, fan       Histogram // the window
	fanCross       Histogram // the window, receiver on another URL than the sender
	fanLocal       Histogram // the window, receiver on the sender's URL
	fanCrossSec    Histogram // the current second, receiver on another URL
	timeline       []Second  // written by drive's goroutine only
	ackSec, fanSec Histogram // the current second, for progress
	ackedWin       atomic.Uint64
	ackedSec       atomic.Uint64
	late           atomic.Uint64

	errMu sync.Mutex
	errs  map[string]uint64
	// lastSeen is each of Options.PIDs as last read (readServer).
	lastSeen map[int]procSample
	errTotal atomic.Uint64
}

func (g *gen) acked(lat time.Duration) {
	g.ackedSec.Add(1)
	g.ackSec.Record(lat)
	if g.measuring.Load() {
		g.ackedWin.Add(1)
		g.ack.Record(lat)
	}
}

// fanout records the arrival of a broadcast (src, seq) at one more client
// of d, the receiver (its index in d.clients).
func (g *gen) fanout(d *doc, receiver int, srcJSON []byte, seq uint64, now time.Time) {
	if len(srcJSON) < 2 {
		return
	}
	sender := d.bySrc[string(srcJSON[1:len(srcJSON)-1])]
	if sender == nil {
		return
	}
	g.fanoutFrom(d, receiver, sender.idx, seq, now)
}

// fanoutFrom records the arrival of the op (sender, seq) at one more
// client of d, the receiver; both are indexes in d.clients.
func (g *gen) fanoutFrom(d *doc, receiver, sender int, seq uint64, now time.Time) {
	key := sentKey{sender, seq}
	d.mu.RLock()
	e := d.sent[key]
	d.mu.RUnlock()
	if e == nil {
		return
	}
	if e.left.Add(-1) == 0 {
		d.mu.Lock()
		delete(d.sent, key)
		d.mu.Unlock()
	}
	lat := now.Sub(e.start)
	g.fanSec.Record(lat)
	// One reading of the window, so that an arrival as it opens or closes
	// is counted in all fan-out and in its split alike.
	measuring := g.measuring.Load()
	if measuring {
		g.fan.Record(lat)
	}
	if g.o.crossNode() {
		cross := g.o.urlOf(d.idx, sender) != g.o.urlOf(d.idx, receiver)
		if cross {
			g.fanCrossSec.Record(lat)
		}
		switch {
		case !measuring:
		case cross:
			g.fanCross.Record(lat)
		default:
			g.fanLocal.Record(lat)
		}
	}
}

func (g *gen) countError(code string) {
	g.errTotal.Add(1)
	g.errMu.Lock()
	g.errs[code]++
	g.errMu.Unlock()
}

// Run opens the connections Options asks for, creates the documents,
// drives the load through the warm-up and the measurement window, waits
// for every op in flight, checks convergence, closes everything and
// returns what it measured. An error means the run could not be set up or
// was cut short (ctx, an ack timeout); the Result, when not nil, holds
// what was measured until then. Errors the servers reply with do not end
// a run: Result.Errors counts them.
func Run(ctx context.Context, o Options) (*Result, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	if o.Seed == 0 {
		o.Seed = rand.Uint64()
	}
	if o.Prefix == "" {
		o.Prefix = fmt.Sprintf("b%06x", rand.IntN(1<<24))
	}
	collJSON, _ := json.Marshal(o.Collection)
	g := &gen{o: o, collJSON: collJSON, errs: map[string]uint64{}}
	s := &setup{g: g}
	defer s.close()
	if err := s.open(ctx); err != nil {
		return nil, err
	}
	res, runErr := g.drive(ctx, s)
	if runErr == nil && !o.Relay && o.Protocol == ProtocolShareDB && o.Clients > 0 {
		ok, issue := s.converged(ctx)
		res.Converged, res.ConvergeIssue = &ok, issue
	}
	g.errMu.Lock()
	if len(g.errs) > 0 {
		res.Errors = g.errs
	}
	g.errMu.Unlock()
	return res, runErr
}

// drive runs the load and measures it.
func (g *gen) drive(ctx context.Context, s *setup) (*Result, error) {
	o := g.o
	res := &Result{URLs: o.URLs, Protocol: o.Protocol, Relay: o.Relay, Affinity: o.Affinity, Mode: "closed", Docs: o.Docs, Clients: o.Clients, Idle: o.Idle,
		WarmupS: o.Warmup.Seconds(), DurationS: o.Duration.Seconds(), IdleBytesPerConn: s.idleBytesPerConn}
	if o.Rate > 0 {
		res.Mode, res.OfferedOps = "open", o.Rate
	}
	for _, c := range s.clients {
		c.reading = true
		go c.read()
	}
	start := time.Now()
	stopSched := make(chan struct{})
	var sched sync.WaitGroup
	if o.Rate > 0 && len(s.clients) > 0 {
		interval := time.Duration(float64(time.Second) * float64(len(s.clients)) / o.Rate)
		for _, c := range s.clients {
			c.mu.Lock() // the reader may use c.rng once an op is acked
			phase := time.Duration(c.rng.Int64N(int64(interval)))
			c.mu.Unlock()
			sched.Go(func() { c.schedule(start.Add(phase), interval, stopSched) })
		}
	} else {
		for _, c := range s.clients {
			c.mu.Lock()
			c.next()
			c.mu.Unlock()
		}
	}

	var base, last, final sample
	// coedit's store batches at the window's start and end (storeBatches).
	var baseBatches, finalBatches float64
	var batchesOK bool
	scrape := !o.Relay && o.Protocol == ProtocolShareDB
	last = g.sample(false)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	warm := time.NewTimer(o.Warmup)
	end := time.NewTimer(o.Warmup + o.Duration)
	defer warm.Stop()
	defer end.Stop()
	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			runErr = ctx.Err()
			break loop
		case <-warm.C:
			// The scrape first and, at the end, last before the counting
			// stops, so that the window's sample and counting are
			// together and the scrapes' own edges about cancel out; it is
			// a loopback request or two, and none for a server that
			// cannot be coedit.
			if scrape {
				baseBatches, batchesOK = storeBatches(ctx, o.URLs)
			}
			base = g.sample(true)
			g.measuring.Store(true)
		case <-end.C:
			if batchesOK {
				finalBatches, batchesOK = storeBatches(ctx, o.URLs)
			}
			g.measuring.Store(false)
			final = g.sample(true)
			break loop
		case now := <-tick.C:
			cur := g.sample(false)
			p := g.progress(now.Sub(start), last, cur)
			if p.Measuring {
				g.timeline = append(g.timeline, p.second())
			}
			if o.Progress != nil {
				o.Progress(p)
			}
			last = cur
			if c := s.stuck(now); c != nil {
				g.countError("ACK_TIMEOUT")
				runErr = fmt.Errorf("loadgen: document %s: op seq %d not acknowledged after %v", c.doc.id, c.inSeq, o.AckTimeout)
				break loop
			}
		}
	}
	g.stopping.Store(true)
	close(stopSched)
	sched.Wait()
	if runErr != nil {
		return res, runErr
	}
	if err := s.drain(ctx); err != nil {
		return res, err
	}
	drained := time.Now()
	res.FanoutPending = s.drainFanout(ctx)
	res.FanoutDrainMS = float64(time.Since(drained)) / float64(time.Millisecond)
	res.Timeline = g.timeline
	for _, c := range s.clients {
		c.mu.Lock()
		res.Unsent += uint64(len(c.due))
		c.mu.Unlock()
	}

	window := final.at.Sub(base.at).Seconds()
	res.Acked = g.ackedWin.Load()
	res.OpsPerSec = float64(res.Acked) / window
	res.Ack, res.Fanout = g.ack.Summary(), g.fan.Summary()
	if o.crossNode() {
		cross, local := g.fanCross.Summary(), g.fanLocal.Summary()
		res.FanoutCross, res.FanoutLocal = &cross, &local
	}
	res.Late = g.late.Load()
	res.Bench = figures(final.self-base.self, window, res.Acked, 0)
	if o.PID != 0 && base.ok && final.ok {
		srv := figures(final.server.cpu-base.server.cpu, window, res.Acked, final.server.rss)
		if res.Acked > 0 {
			srv.CtxSwitchesPerOp = float64(switchesSince(base.server.switches, final.server.switches)) / float64(res.Acked)
		}
		res.Server = &srv
		if len(o.PIDs) > 0 {
			res.ServerShares = shares(base.server.byName, final.server.byName, window, res.Acked)
		}
	}
	if batchesOK && res.Acked > 0 {
		v := (finalBatches - baseBatches) / float64(res.Acked)
		res.StoreBatchesPerOp = &v
	}
	return res, nil
}

// schedule submits the client's ops on a fixed timetable from first, one
// every interval, until stop: an op that falls due while another is in
// flight waits in c.due (open loop, so a slow server does not slow the
// offered load down).
func (c *client) schedule(first time.Time, interval time.Duration, stop <-chan struct{}) {
	t := time.NewTimer(time.Until(first))
	defer t.Stop()
	for due := first; ; due = due.Add(interval) {
		t.Reset(time.Until(due))
		select {
		case <-stop:
			return
		case <-t.C:
		}
		c.mu.Lock()
		if c.inflight == nil && !c.resyncing && !c.dead && len(c.due) == 0 {
			c.submit(due)
		} else {
			c.due = append(c.due, due)
			if c.g.measuring.Load() {
				c.g.late.Add(1)
			}
		}
		c.mu.Unlock()
	}
}

// sample is the CPU time of this process and of the server at a moment.
type sample struct {
	at     time.Time
	self   time.Duration
	server procSample
	ok     bool // server sampled
}

// sample samples both processes now; threads as for readServer.
func (g *gen) sample(threads bool) sample {
	s := sample{at: time.Now(), self: selfCPU()}
	if g.o.PID != 0 {
		p, err := g.readServer(threads)
		s.server, s.ok = p, err == nil
	}
	return s
}

// readServer samples Options.PID and adds Options.PIDs to it, with their
// threads' context switches if threads (readProc). Options.PID must be
// alive; one of Options.PIDs that has exited counts as last seen. One
// goroutine calls it at a time (setup, then the driving loop).
func (g *gen) readServer(threads bool) (procSample, error) {
	sum, err := readProc(g.o.PID, threads)
	if err != nil {
		return procSample{}, err
	}
	if len(g.o.PIDs) == 0 {
		return sum, nil
	}
	if g.lastSeen == nil {
		g.lastSeen = make(map[int]procSample, len(g.o.PIDs))
	}
	sum.byName = map[string]nameCPU{sum.name: {sum.cpu, 1}}
	for _, pid := range g.o.PIDs {
		p, err := readProc(pid, threads)
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH):
			// A further process that has exited (a database's worker,
			// say) counts what it had spent when last seen, so the
			// window neither fails nor loses what it spent before.
			p = g.lastSeen[pid]
			if p.name == "" {
				continue // never seen
			}
		case err != nil:
			return procSample{}, err
		default:
			g.lastSeen[pid] = procSample{cpu: p.cpu, name: p.name}
		}
		sum.cpu += p.cpu
		sum.rss += p.rss
		maps.Copy(sum.switches, p.switches)
		n := sum.byName[p.name]
		sum.byName[p.name] = nameCPU{n.cpu + p.cpu, n.procs + 1}
	}
	return sum, nil
}

func figures(cpu time.Duration, window float64, ops uint64, rss int64) ProcFigures {
	f := ProcFigures{CPUSeconds: cpu.Seconds(), CPUPercent: 100 * cpu.Seconds() / window, RSSBytes: rss}
	if ops > 0 {
		f.CPUPerOpUS = float64(cpu.Microseconds()) / float64(ops)
	}
	return f
}

// progress summarises the second since last and starts a new one.
func (g *gen) progress(elapsed time.Duration, last, cur sample) Progress {
	secs := cur.at.Sub(last.at).Seconds()
	p := Progress{Elapsed: elapsed, Measuring: g.measuring.Load(), Acked: g.ackedSec.Swap(0),
		AckP50: g.ackSec.Quantile(0.5), AckP99: g.ackSec.Quantile(0.99), FanoutP99: g.fanSec.Quantile(0.99),
		FanoutCrossP99: -1,
		Errors:         g.errTotal.Load(), Late: g.late.Load(), ServerCPU: -1, BenchCPU: 100 * (cur.self - last.self).Seconds() / secs}
	if g.o.crossNode() {
		p.FanoutCrossP99 = g.fanCrossSec.Quantile(0.99)
	}
	g.ackSec.Reset()
	g.fanSec.Reset()
	g.fanCrossSec.Reset()
	if cur.ok && last.ok {
		p.ServerCPU = 100 * (cur.server.cpu - last.server.cpu).Seconds() / secs
		p.ServerRSS = cur.server.rss
	}
	return p
}

// errStuck is returned when ops stay unacknowledged after the load ends.
var errStuck = errors.New("loadgen: ops still unacknowledged after the ack timeout")
