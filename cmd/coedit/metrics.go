package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/coedit/coedit/storage"
)

// storeCollector reports a storage.DB's counters on /metrics, read at
// scrape time. web serves the registry; the store is known only here.
type storeCollector struct {
	db                          *storage.DB
	commits, writes, applies    *prometheus.Desc
	pendingDocs, unappliedBytes *prometheus.Desc
}

func newStoreCollector(db *storage.DB) *storeCollector {
	return &storeCollector{
		db: db,
		commits: prometheus.NewDesc("coedit_store_commits_total",
			"Commit, SaveSnapshot and Truncate calls the store wrote in group commits.", nil, nil),
		writes: prometheus.NewDesc("coedit_store_write_batches_total",
			"Write transactions the store ran (with --sync always, one fsync each); commits divided by this is the group commit size.", nil, nil),
		applies: prometheus.NewDesc("coedit_store_applies_total",
			"bbolt write transactions that moved logged ops from the op log into the bbolt file.", nil, nil),
		pendingDocs: prometheus.NewDesc("coedit_store_pending_documents",
			"Documents with logged ops not yet in the bbolt file (served from memory meanwhile).", nil, nil),
		unappliedBytes: prometheus.NewDesc("coedit_store_unapplied_bytes",
			"Bytes of op log frames kept until the bbolt file holds their ops; at 8 MiB everything is applied.", nil, nil),
	}
}

// Describe sends the collector's descs.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.commits
	ch <- c.writes
	ch <- c.applies
	ch <- c.pendingDocs
	ch <- c.unappliedBytes
}

// Collect reports the store's current counters.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.db.Stats()
	ch <- prometheus.MustNewConstMetric(c.commits, prometheus.CounterValue, float64(st.Commits))
	ch <- prometheus.MustNewConstMetric(c.writes, prometheus.CounterValue, float64(st.Batches))
	ch <- prometheus.MustNewConstMetric(c.applies, prometheus.CounterValue, float64(st.Applies))
	ch <- prometheus.MustNewConstMetric(c.pendingDocs, prometheus.GaugeValue, float64(st.PendingDocs))
	ch <- prometheus.MustNewConstMetric(c.unappliedBytes, prometheus.GaugeValue, float64(st.UnappliedBytes))
}
