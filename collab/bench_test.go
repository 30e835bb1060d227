package collab_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coedit/coedit/collab"
	"github.com/coedit/coedit/storage"
)

// BenchmarkSubmit measures submits through one document's session into a
// real store, with one writer (each submit waits for its commit) and with
// many (their submits share group commits).
func BenchmarkSubmit(b *testing.B) {
	for _, mode := range []storage.SyncMode{storage.SyncNone, storage.SyncAlways} {
		for _, writers := range []int{1, 64} {
			b.Run(fmt.Sprintf("sync=%s/writers=%d", mode, writers), func(b *testing.B) {
				db, _ := openStore(b, mode)
				h := startHub(b, collab.Options{Store: db})
				mustSubmit(b, h, docX, createSub("", 0, ""))
				before := h.Stats()
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for w := range writers {
					wg.Go(func() {
						src := fmt.Sprint("w", w)
						for seq := uint64(1); next.Add(1) <= int64(b.N); seq++ {
							// No version: the op applies at the head, so the
							// benchmark measures the session and the store,
							// not transform.
							s := collab.Submission{Src: src, Seq: seq, Kind: collab.OpEdit, Op: ins(0, "x")}
							if _, err := h.SubmitWait(ctxBG, docX, s); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)
				b.StopTimer()
				st := h.Stats()
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
				if n := st.CommitBatches - before.CommitBatches; n > 0 {
					b.ReportMetric(float64(st.OpsCommitted-before.OpsCommitted)/float64(n), "ops/commit")
				}
			})
		}
	}
}
