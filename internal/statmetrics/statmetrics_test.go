package statmetrics_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/coedit/coedit/internal/statmetrics"
)

type figures struct {
	done  uint64
	queue int
}

// TestCollectorReportsOneReadPerScrape: each scrape reads the figures
// once and reports every metric from that read, as its kind.
func TestCollectorReportsOneReadPerScrape(t *testing.T) {
	reads := 0
	c := statmetrics.New(func() figures {
		reads++
		return figures{done: uint64(10 * reads), queue: reads}
	})
	c.Counter("test_done_total", "Things done.", func(f figures) uint64 { return f.done })
	c.Gauge("test_queue", "Things waiting.", func(f figures) float64 { return float64(f.queue) })
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	for scrape := 1; scrape <= 2; scrape++ {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		if reads != scrape {
			t.Fatalf("after %d scrapes the figures were read %d times, want once per scrape", scrape, reads)
		}
		got := map[string]*dto.MetricFamily{}
		for _, mf := range mfs {
			got[mf.GetName()] = mf
		}
		done, queue := got["test_done_total"], got["test_queue"]
		if done == nil || queue == nil || len(got) != 2 {
			t.Fatalf("scrape %d gathered %v, want test_done_total and test_queue", scrape, got)
		}
		if done.GetType() != dto.MetricType_COUNTER || done.GetHelp() != "Things done." || done.Metric[0].GetCounter().GetValue() != float64(10*scrape) {
			t.Errorf("scrape %d: test_done_total = %v, want counter %d", scrape, done, 10*scrape)
		}
		if queue.GetType() != dto.MetricType_GAUGE || queue.Metric[0].GetGauge().GetValue() != float64(scrape) {
			t.Errorf("scrape %d: test_queue = %v, want gauge %d", scrape, queue, scrape)
		}
	}
}
