package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/coedit/coedit/storage"
)

// storeCollector reports a storage.DB's counters on /metrics, read at
// scrape time. web serves the registry; the store is known only here.
type storeCollector struct {
	db              *storage.DB
	commits, writes *prometheus.Desc
}

func newStoreCollector(db *storage.DB) *storeCollector {
	return &storeCollector{
		db: db,
		commits: prometheus.NewDesc("coedit_store_commits_total",
			"Commit, SaveSnapshot and Truncate calls the store wrote in group commits.", nil, nil),
		writes: prometheus.NewDesc("coedit_store_write_batches_total",
			"Write transactions the store ran (with --sync always, one fsync each); commits divided by this is the group commit size.", nil, nil),
	}
}

// Describe sends the collector's descs.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.commits
	ch <- c.writes
}

// Collect reports the store's current counters.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.db.Stats()
	ch <- prometheus.MustNewConstMetric(c.commits, prometheus.CounterValue, float64(st.Commits))
	ch <- prometheus.MustNewConstMetric(c.writes, prometheus.CounterValue, float64(st.Batches))
}
