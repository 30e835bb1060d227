// Package statmetrics reports a component's counters on /metrics. The
// components (collab.Hub, storage.DB, redisrelay's Relay and Cluster)
// keep their own counters and hand out a copy (Stats); a Collector reads
// one copy per scrape and reports each figure from it, so the figures of
// one scrape are of one moment and the components know nothing of
// Prometheus.
package statmetrics

import "github.com/prometheus/client_golang/prometheus"

// Collector is a prometheus.Collector of the figures of an S, read with
// its read function once per Collect.
type Collector[S any] struct {
	read    func() S
	metrics []metric[S]
}

type metric[S any] struct {
	desc  *prometheus.Desc
	typ   prometheus.ValueType
	value func(S) float64
}

// New returns a Collector that reads its figures from read.
func New[S any](read func() S) *Collector[S] {
	return &Collector[S]{read: read}
}

// Counter adds a counter, name with help, whose value v reads.
func (c *Collector[S]) Counter(name, help string, v func(S) uint64) {
	c.add(name, help, prometheus.CounterValue, func(s S) float64 { return float64(v(s)) })
}

// Gauge adds a gauge, name with help, whose value v reads.
func (c *Collector[S]) Gauge(name, help string, v func(S) float64) {
	c.add(name, help, prometheus.GaugeValue, v)
}

func (c *Collector[S]) add(name, help string, typ prometheus.ValueType, v func(S) float64) {
	c.metrics = append(c.metrics, metric[S]{prometheus.NewDesc(name, help, nil, nil), typ, v})
}

// Describe implements prometheus.Collector.
func (c *Collector[S]) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector: one read, every figure.
func (c *Collector[S]) Collect(ch chan<- prometheus.Metric) {
	s := c.read()
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.typ, m.value(s))
	}
}
