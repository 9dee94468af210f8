package discovery

import (
	"bytes"
	"fmt"
	"io"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// maxMetricsBytes bounds how much of a metrics answer is read.
const maxMetricsBytes = 4 << 20

// parseMetrics reads the Prometheus text format and sums each family's series. With keep
// set, only those families are parsed: the other lines are dropped before the parser sees
// them, which saves most of the work when an instance exposes many families.
func parseMetrics(r io.Reader, keep map[string]bool) (map[string]float64, error) {
	r = io.LimitReader(r, maxMetricsBytes)
	if len(keep) > 0 {
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
		r = bytes.NewReader(filterFamilies(b, keep))
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	out := make(map[string]float64, len(fams))
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[name] += m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[name] += m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				out[name] += m.GetUntyped().GetValue()
			case dto.MetricType_SUMMARY:
				out[name+"_sum"] += m.GetSummary().GetSampleSum()
				out[name+"_count"] += float64(m.GetSummary().GetSampleCount())
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				out[name+"_sum"] += m.GetHistogram().GetSampleSum()
				out[name+"_count"] += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out, nil
}

// filterFamilies keeps the lines of the text format that belong to the families in keep:
// their # HELP and # TYPE lines and their samples (summary and histogram samples carry
// _sum, _count and _bucket suffixes).
func filterFamilies(b []byte, keep map[string]bool) []byte {
	out := b[:0:0]
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i+1], b[i+1:]
		} else {
			b = nil
		}
		var name []byte
		if bytes.HasPrefix(line, []byte("# ")) {
			f := bytes.Fields(line)
			if len(f) < 3 {
				continue
			}
			name = f[2]
		} else {
			end := bytes.IndexAny(line, "{ \t\n")
			if end < 0 {
				end = len(line)
			}
			name = line[:end]
		}
		if familyKept(name, keep) {
			out = append(out, line...)
			if line[len(line)-1] != '\n' {
				out = append(out, '\n')
			}
		}
	}
	return out
}

func familyKept(name []byte, keep map[string]bool) bool {
	if keep[string(name)] {
		return true
	}
	for _, suffix := range []string{"_sum", "_count", "_bucket"} {
		if base, ok := bytes.CutSuffix(name, []byte(suffix)); ok && keep[string(base)] {
			return true
		}
	}
	return false
}
