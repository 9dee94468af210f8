package discovery

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sampleMetrics = `# HELP qix_active_sessions Sessions open now.
# TYPE qix_active_sessions gauge
qix_active_sessions{doc="a"} 3
qix_active_sessions{doc="b"} 4
# TYPE requests_total counter
requests_total 1027
# TYPE latency_seconds histogram
latency_seconds_bucket{le="0.1"} 5
latency_seconds_bucket{le="+Inf"} 7
latency_seconds_sum 0.9
latency_seconds_count 7
# TYPE rpc summary
rpc{quantile="0.5"} 0.2
rpc_sum 12
rpc_count 40
untyped_thing 1.5
`

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(sampleMetrics), nil)
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{
		"qix_active_sessions": 7, "requests_total": 1027, "latency_seconds_sum": 0.9, "latency_seconds_count": 7,
		"rpc_sum": 12, "rpc_count": 40, "untyped_thing": 1.5,
	}, m)

	m, err = parseMetrics(strings.NewReader(sampleMetrics), map[string]bool{"qix_active_sessions": true, "latency_seconds": true})
	require.NoError(t, err)
	assert.Equal(t, map[string]float64{"qix_active_sessions": 7, "latency_seconds_sum": 0.9, "latency_seconds_count": 7}, m)

	_, err = parseMetrics(strings.NewReader("qix_active_sessions{ 3\n"), nil)
	require.Error(t, err)
}

func FuzzParseMetrics(f *testing.F) {
	f.Add(sampleMetrics)
	f.Add("a 1\nb{x=\"y\"} 2\n# TYPE c counter\nc 3")
	f.Fuzz(func(t *testing.T, text string) {
		keep := map[string]bool{"a": true, "qix_active_sessions": true}
		_, _ = parseMetrics(strings.NewReader(text), nil)
		_, _ = parseMetrics(strings.NewReader(text), keep)
		if out := filterFamilies([]byte(text), keep); len(out) > len(text)+strings.Count(text, "\n")+1 {
			t.Fatalf("filter grew the input")
		}
	})
}
