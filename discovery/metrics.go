package discovery

import (
	"bytes"
	"fmt"
	"io"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parsers keeps text parsers (and their read buffers) between polls.
var parsers = sync.Pool{New: func() any {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return &p
}}

// maxMetricsBytes bounds how much of a metrics answer is read.
const maxMetricsBytes = 4 << 20

// parseMetrics reads the Prometheus text format and sums each family's series. Before the
// parser sees the text, # HELP lines are dropped (nothing here uses them, and they are
// much of the parser's work) and, with keep set, so are the families not in keep, which
// saves most of the work when an instance exposes many families.
func parseMetrics(r io.Reader, keep map[string]bool) (map[string]float64, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxMetricsBytes))
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	r = bytes.NewReader(filterFamilies(b, keep))
	p := parsers.Get().(*expfmt.TextParser)
	fams, err := p.TextToMetricFamilies(r)
	parsers.Put(p)
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

// filterFamilies keeps the lines of the text format that belong to the families in keep
// (every family when keep is empty): their # TYPE lines and their samples (summary and
// histogram samples carry _sum, _count and _bucket suffixes). # HELP lines are dropped.
//
// It filters b in place (the lines kept move towards its start) and returns the kept part.
func filterFamilies(b []byte, keep map[string]bool) []byte {
	out := b[:0]
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i+1], b[i+1:]
		} else {
			b = nil
		}
		var name []byte
		if line[0] == '#' {
			rest, ok := bytes.CutPrefix(line, []byte("# TYPE "))
			if !ok {
				continue // # HELP, or a plain comment
			}
			if len(keep) > 0 {
				rest = bytes.TrimLeft(rest, " \t")
				end := bytes.IndexAny(rest, " \t\n")
				if end < 0 {
					end = len(rest)
				}
				name = rest[:end]
			}
		} else if len(keep) > 0 {
			end := bytes.IndexAny(line, "{ \t\n")
			if end < 0 {
				end = len(line)
			}
			name = line[:end]
		}
		if len(keep) == 0 || familyKept(name, keep) {
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
