package web

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
)

// TestHTTPSubmitsShareTheAddressBucket: an address's HTTP submits take
// from one bucket of the WebSocket op rate's shape, so a token cannot get
// around --ops-per-second by posting. A submit owed a token within
// httpPaceMost waits for it and is served; one owed more is refused with
// 429 ERR_RATE_LIMITED and a Retry-After that says when to come back.
func TestHTTPSubmitsShareTheAddressBucket(t *testing.T) {
	const rate, burst = 10, 2
	ts := startServer(t, Options{Logger: quiet, OpsPerSecond: rate, OpsBurst: burst}, collab.Options{})
	submit := func() (int, string, http.Header) {
		req, err := http.NewRequest("POST", ts.http.URL+"/api/docs/docs/rated/ops", strings.NewReader(`{"op":["x"]}`))
		if err != nil {
			t.Error(err)
			return 0, "", nil
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return 0, "", nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	start := time.Now()
	if status, body := ts.httpDo(t, "POST", "/api/docs/docs/rated/ops", "application/json", `{"create":{"type":"text-unicode","data":""}}`, nil); status != http.StatusOK {
		t.Fatalf("create = %d %s", status, body)
	}
	// One after another: past the burst each waits an interval, and all
	// are served. By the last one's answer the bucket has given the
	// create and n submits: burst of them at once, the rest at the rate.
	const n = 8
	for i := range n {
		if status, body, _ := submit(); status != http.StatusOK {
			t.Fatalf("submit %d one after another = %d %s, want 200 after a wait", i, status, body)
		}
	}
	if elapsed, least := time.Since(start), time.Duration(1+n-burst)*time.Second/rate; elapsed < least {
		t.Fatalf("%d submits one after another served in %v, want at least %v at %d a second", n, elapsed, least, rate)
	}
	// All at once: those owed more than httpPaceMost are refused.
	const flood = 3 * rate
	var mu sync.Mutex
	ok, refused := 0, 0
	var wg sync.WaitGroup
	for range flood {
		wg.Add(1)
		go func() {
			defer wg.Done()
			status, body, hdr := submit()
			mu.Lock()
			defer mu.Unlock()
			switch status {
			case http.StatusOK:
				ok++
			case http.StatusTooManyRequests:
				refused++
				checkHTTPError(t, status, body, http.StatusTooManyRequests, CodeRateLimited)
				if s, err := strconv.Atoi(hdr.Get("Retry-After")); err != nil || s < 1 {
					t.Errorf("429 with Retry-After %q, want whole seconds, at least 1", hdr.Get("Retry-After"))
				}
			default:
				t.Errorf("submit in a flood = %d %s", status, body)
			}
		}()
	}
	wg.Wait()
	// Within httpPaceMost (1 s) at 10 a second, about 10 (and the burst,
	// if it refilled) may be served; the rest, at least a third, refused.
	if refused < flood/3 || ok > flood-flood/3 {
		t.Fatalf("a flood of %d submits: %d served, %d refused; want at most about %d served", flood, ok, refused, rate+burst)
	}
	status, body := ts.httpDo(t, "GET", "/api/docs/docs/rated", "", "", nil)
	if want := strings.Repeat("x", n+ok); status != http.StatusOK || !strings.Contains(body, `"data":"`+want+`"`) {
		t.Fatalf("the document after the served submits = %d %s, want %d x", status, body, n+ok)
	}
}
