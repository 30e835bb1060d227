package web

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
)

// BenchmarkIdleConnectionMemory reports what the server holds for each
// open, handshaken, subscribed and idle WebSocket connection, ten to a
// document as in scenario 5 of scripts/bench.sh, with the documents'
// sessions loaded by those subscribes (so a tenth of a session counts
// for each connection):
//
//   - heapB/conn: the server's live heap (every allocation is sampled
//     and those of this process's clients are left out, so the figure is
//     the server's alone);
//   - stackB/conn: goroutine stacks (the clients run none);
//   - goroutines/conn.
//
// With -v it logs where the heap goes, by allocating function. It
// counts bytes, not time: run it with -benchtime 1x.
func BenchmarkIdleConnectionMemory(b *testing.B) {
	for range b.N {
		m := measureIdle(b, 1000)
		b.ReportMetric(m.stack, "stackB/conn")
		b.ReportMetric(m.heap, "heapB/conn")
		b.ReportMetric(m.goroutines, "goroutines/conn")
		if testing.Verbose() {
			b.Logf("server heap per idle connection, by allocating function:\n%s", m.sites)
		}
	}
}

// maxIdleHeap bounds the server's live heap per idle subscribed
// connection in TestIdleConnectionHeap: 3.9 KiB before the registry,
// rate limits and ping timers were made small, about 3.0 KiB after.
const maxIdleHeap = 3400

// TestIdleConnectionHeap keeps what an idle subscribed connection holds
// on the server's heap from growing back (scenario 5 of issue 11: at most
// 8 KiB of memory per connection, stacks and the GC's headroom included).
// It counts bytes, not time.
func TestIdleConnectionHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 300 connections with every allocation sampled")
	}
	m := measureIdle(t, 300)
	if m.heap > maxIdleHeap {
		t.Errorf("live heap per idle connection = %.0f bytes, want at most %d; by allocating function:\n%s", m.heap, maxIdleHeap, m.sites)
	}
	// An idle reader waits in a fill of its read buffer on a 2 KiB stack
	// (conn.read); waiting in gorilla's read took it past 2 KiB, to 4 (4.6
	// KiB per connection measured with a tenth of a session's stack). The
	// race detector's instrumentation grows stacks, so only a plain build
	// checks it.
	// StackInuse is read after collections at both ends (measureIdle),
	// which give back the stack spans left wholly free; the free stacks
	// in spans still partly used count too, the exited writers' at the
	// end and, at the start, those the connections' goroutines then
	// take, so one measurement reads high or low: 765 to 3,277 bytes in
	// 24 runs of one build (1,201 to 3,386 in 18 when the end was read
	// before the collections). Over the bound, it measures up to twice
	// again and keeps the least.
	for i := 0; i < 2 && !raceOn && m.stack > maxIdleStack; i++ {
		again := measureIdle(t, 300).stack
		t.Logf("goroutine stack per idle connection read %.0f bytes, over %d: measured again, %.0f", m.stack, maxIdleStack, again)
		m.stack = min(m.stack, again)
	}
	if !raceOn && m.stack > maxIdleStack {
		t.Errorf("goroutine stack per idle connection = %.0f bytes, want at most %d", m.stack, maxIdleStack)
	}
}

// maxIdleStack bounds the goroutine stacks an idle subscribed connection
// holds: its reader's 2 KiB, and a tenth of its document session's.
const maxIdleStack = 3500

// idleMemory is what measureIdle found, per connection.
type idleMemory struct {
	heap, stack, goroutines float64
	sites                   string // the heap by allocating function
}

// measureIdle opens n connections to a fresh server, subscribed ten to a
// document (documents with some text whose sessions had stopped, so the
// subscribes load them), and returns what the server holds for each.
func measureIdle(tb testing.TB, n int) idleMemory {
	const perDoc = 10
	defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
	runtime.MemProfileRate = 1
	ts := startServer(tb, Options{Logger: quiet, MaxConnsPerAddr: n + 1},
		collab.Options{IdleTimeout: time.Millisecond})
	addr := strings.TrimPrefix(strings.TrimSuffix(ts.wsURL, "/ws"), "ws://")
	maker := rawDial(tb, addr)
	for d := range (n + perDoc - 1) / perDoc {
		maker.send(tb, fmt.Sprintf(`{"a":"op","c":"bench","d":"mem-%d","v":null,"seq":%d,"create":{"type":"text-unicode","data":"Hello, idle world: %d"}}`, d, d+1, d))
		maker.recv(tb)
	}
	maker.nc.Close()
	for ts.hub.Stats().Sessions > 0 {
		time.Sleep(5 * time.Millisecond)
	}
	// Both stack readings follow serverHeap's collections, which shrink
	// only stacks using under a quarter of their size, as the
	// collections of a running server would.
	before := serverHeap()
	var sb, sa runtime.MemStats
	runtime.ReadMemStats(&sb)
	g0 := runtime.NumGoroutine()
	conns := make([]*rawClient, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.nc.Close()
			}
		}
	}()
	for i := range conns {
		conns[i] = rawDial(tb, addr)
		conns[i].send(tb, fmt.Sprintf(`{"a":"s","c":"bench","d":"mem-%d","v":null}`, i/perDoc))
		conns[i].recv(tb)
	}
	for range 100 { // the writers that sent the replies exit
		if runtime.NumGoroutine()-g0 <= n+(n+perDoc-1)/perDoc {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	g1 := runtime.NumGoroutine()
	after := serverHeap()
	runtime.ReadMemStats(&sa)
	return idleMemory{
		heap:       float64(after.total-before.total) / float64(n),
		stack:      float64(int64(sa.StackInuse)-int64(sb.StackInuse)) / float64(n),
		goroutines: float64(g1-g0) / float64(n),
		sites:      after.minus(before, n),
	}
}

// heapSites is the server's live heap by allocating function: the
// innermost frame outside the runtime and the standard library's
// allocation helpers.
type heapSites struct {
	total int64
	sites map[string]int64
}

// serverHeap collects the live heap from the memory profile after two
// collections (the profile lags one), leaving out what the benchmark and
// its clients allocated.
func serverHeap() heapSites {
	runtime.GC()
	runtime.GC()
	var recs []runtime.MemProfileRecord
	for {
		k, ok := runtime.MemProfile(nil, true)
		recs = make([]runtime.MemProfileRecord, k+50)
		if k, ok = runtime.MemProfile(recs, true); ok {
			recs = recs[:k]
			break
		}
	}
	h := heapSites{sites: map[string]int64{}}
	for _, r := range recs {
		frames := runtime.CallersFrames(r.Stack())
		site, inner, client := "", "", false
		for {
			f, more := frames.Next()
			if strings.Contains(f.Function, "web.rawDial") || strings.Contains(f.Function, "web.(*rawClient)") ||
				strings.Contains(f.Function, "web.measureIdle") || strings.Contains(f.Function, "web.serverHeap") {
				client = true
				break
			}
			internal := strings.HasPrefix(f.Function, "runtime.") || strings.HasPrefix(f.Function, "internal/runtime/")
			if site == "" && !internal && f.Function != "" {
				site = f.Function
			}
			if inner == "" && !strings.HasPrefix(f.Function, "runtime.mallocgc") && !strings.HasPrefix(f.Function, "runtime.new") && !strings.HasPrefix(f.Function, "internal/runtime/maps.") {
				inner = f.Function
			}
			if !more {
				break
			}
		}
		if client {
			continue
		}
		if site == "" {
			site = inner
		}
		h.total += r.InUseBytes()
		h.sites[site] += r.InUseBytes()
	}
	return h
}

// minus formats what h holds more than base, per connection, largest
// first.
func (h heapSites) minus(base heapSites, n int) string {
	type site struct {
		name  string
		bytes int64
	}
	var s []site
	for k, v := range h.sites {
		if d := v - base.sites[k]; d >= int64(n)/4 {
			s = append(s, site{k, d})
		}
	}
	slices.SortFunc(s, func(a, b site) int { return cmp.Compare(b.bytes, a.bytes) })
	var buf strings.Builder
	for _, x := range s {
		fmt.Fprintf(&buf, "%8.1f B  %s\n", float64(x.bytes)/float64(n), x.name)
	}
	return buf.String()
}

// rawClient is a WebSocket client that holds nothing but its socket, so
// that what it allocates is small and easy to tell from the server's.
type rawClient struct {
	nc net.Conn
}

// rawDial opens a WebSocket to addr and does ShareDB's handshake.
func rawDial(tb testing.TB, addr string) *rawClient {
	tb.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	c := &rawClient{nc: nc}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	req := "GET /ws HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		tb.Fatal(err)
	}
	var head []byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		var one [1]byte
		if _, err := io.ReadFull(nc, one[:]); err != nil {
			tb.Fatalf("upgrade: %v after %q", err, head)
		}
		head = append(head, one[0])
	}
	if !bytes.HasPrefix(head, []byte("HTTP/1.1 101 ")) {
		tb.Fatalf("upgrade refused: %q", head)
	}
	c.send(tb, `{"a":"hs","id":null}`)
	c.recv(tb)
	return c
}

// send writes msg as one masked text frame (a zero mask: the payload
// goes as it is).
func (c *rawClient) send(tb testing.TB, msg string) {
	tb.Helper()
	var hdr []byte
	switch n := len(msg); {
	case n < 126:
		hdr = []byte{0x81, 0x80 | byte(n)}
	case n < 1<<16:
		hdr = binary.BigEndian.AppendUint16([]byte{0x81, 0x80 | 126}, uint16(n))
	default:
		hdr = binary.BigEndian.AppendUint64([]byte{0x81, 0x80 | 127}, uint64(n))
	}
	hdr = append(hdr, 0, 0, 0, 0)
	if _, err := c.nc.Write(append(hdr, msg...)); err != nil {
		tb.Fatal(err)
	}
}

// recv reads one frame and returns its payload.
func (c *rawClient) recv(tb testing.TB) []byte {
	tb.Helper()
	_, p := c.frame(tb)
	return p
}

// frame reads one frame and returns its opcode and payload.
func (c *rawClient) frame(tb testing.TB) (byte, []byte) {
	tb.Helper()
	var h [2]byte
	if _, err := io.ReadFull(c.nc, h[:]); err != nil {
		tb.Fatal(err)
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err := io.ReadFull(c.nc, e[:]); err != nil {
			tb.Fatal(err)
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err := io.ReadFull(c.nc, e[:]); err != nil {
			tb.Fatal(err)
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(c.nc, p); err != nil {
		tb.Fatal(err)
	}
	return h[0] & 0x0f, p
}
