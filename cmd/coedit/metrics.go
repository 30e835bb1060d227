package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/coedit/coedit/storage"
)

// storeCollector reports a storage.DB's counters on /metrics, read at
// scrape time. web serves the registry; the store is known only here.
type storeCollector struct {
	db      *storage.DB
	metrics []storeMetric
}

type storeMetric struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(storage.Stats) float64
}

func newStoreCollector(db *storage.DB) *storeCollector {
	c := &storeCollector{db: db}
	add := func(name, help string, typ prometheus.ValueType, v func(storage.Stats) float64) {
		c.metrics = append(c.metrics, storeMetric{prometheus.NewDesc(name, help, nil, nil), typ, v})
	}
	add("coedit_store_commits_total", "Commit, SaveSnapshot and Truncate calls the store wrote in group commits.",
		prometheus.CounterValue, func(st storage.Stats) float64 { return float64(st.Commits) })
	add("coedit_store_write_batches_total", "Write transactions the store ran (with --sync always, one fsync each); commits divided by this is the group commit size.",
		prometheus.CounterValue, func(st storage.Stats) float64 { return float64(st.Batches) })
	add("coedit_store_applies_total", "bbolt write transactions that moved logged ops from the op log into the bbolt file.",
		prometheus.CounterValue, func(st storage.Stats) float64 { return float64(st.Applies) })
	add("coedit_store_pending_documents", "Documents with logged ops not yet in the bbolt file (served from memory meanwhile).",
		prometheus.GaugeValue, func(st storage.Stats) float64 { return float64(st.PendingDocs) })
	add("coedit_store_unapplied_bytes", "Bytes of op log frames kept until the bbolt file holds their ops; at 8 MiB everything is applied.",
		prometheus.GaugeValue, func(st storage.Stats) float64 { return float64(st.UnappliedBytes) })
	return c
}

// Describe sends the collector's descs.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

// Collect reports the store's current counters, from one Stats call.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.db.Stats()
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.value(st))
	}
}
