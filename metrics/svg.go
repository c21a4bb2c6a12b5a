package metrics

import (
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"
)

// Charts for the status page: inline SVG written here, so the page needs
// no script and no external asset. Each chart also has a <title> and its
// numbers are in a table beside it, for terminal browsers.

const (
	chartW, chartH = 640, 220
	padL, padR     = 56, 12
	padT, padB     = 22, 40
)

var rcodeColors = map[string]string{
	"NOERROR":  "#2e7d32",
	"NXDOMAIN": "#1565c0",
	"REFUSED":  "#ef6c00",
	"SERVFAIL": "#c62828",
	"FORMERR":  "#6a1b9a",
	"NOTIMP":   "#4e342e",
}

func colorOf(rc string) string {
	if c, ok := rcodeColors[rc]; ok {
		return c
	}
	return "#616161"
}

// esc escapes text for SVG (which is XML inside HTML).
func esc(s string) string { return template.HTMLEscapeString(s) }

// niceMax rounds v up to 1, 2 or 5 times a power of ten (at least 1).
func niceMax(v float64) float64 {
	if v <= 1 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func fmtNum(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'g', 3, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'g', 3, 64) + "k"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// frame starts an SVG with axes and horizontal grid lines up to top.
func frame(b *strings.Builder, title string, top float64, unit string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" role="img" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`, chartW, chartH, chartW, chartH)
	fmt.Fprintf(b, `<title>%s</title>`, esc(title))
	fmt.Fprintf(b, `<rect x="0" y="0" width="%d" height="%d" fill="#fff"/>`, chartW, chartH)
	plotH := float64(chartH - padT - padB)
	for i := 0; i <= 4; i++ {
		y := float64(padT) + plotH*float64(4-i)/4
		fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e0e0e0"/>`, padL, y, chartW-padR, y)
		fmt.Fprintf(b, `<text x="%d" y="%.1f" text-anchor="end" fill="#424242">%s</text>`, padL-4, y+4, esc(fmtNum(top*float64(i)/4)))
	}
	fmt.Fprintf(b, `<text x="4" y="12" fill="#424242">%s</text>`, esc(unit))
	fmt.Fprintf(b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#424242"/>`, padL, chartH-padB, chartW-padR, chartH-padB)
}

// rateChart draws one line per response code: queries per second over
// the sampled minutes.
func rateChart(series []RateSeries) template.HTML {
	var b strings.Builder
	top := 0.0
	n := 0
	for _, s := range series {
		n = max(n, len(s.Points))
		for _, p := range s.Points {
			top = max(top, p.PerSecond)
		}
	}
	top = niceMax(top)
	frame(&b, "DNS queries per second by response code", top, "queries/s")
	plotW, plotH := float64(chartW-padL-padR), float64(chartH-padT-padB)
	if n < 1 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#757575">no samples yet: rates appear after %s</text>`, padL+10, padT+30, sampleInterval)
	}
	x := func(i int) float64 {
		if n <= 1 {
			return float64(padL) + plotW
		}
		return float64(padL) + plotW*float64(i)/float64(n-1)
	}
	for _, s := range series {
		if len(s.Points) == 0 {
			continue
		}
		off := n - len(s.Points)
		var pts []string
		for i, p := range s.Points {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(off+i), float64(padT)+plotH*(1-p.PerSecond/top)))
		}
		if len(pts) == 1 {
			fmt.Fprintf(&b, `<circle cx="%s" r="3" fill="%s"/>`, strings.Replace(pts[0], ",", `" cy="`, 1), colorOf(s.Rcode))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke-width="2" stroke="%s" points="%s"><title>%s</title></polyline>`, colorOf(s.Rcode), strings.Join(pts, " "), esc(s.Rcode))
	}
	// Time axis: the first and last sample.
	for _, s := range series {
		if len(s.Points) > 0 && len(s.Points) == n {
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#424242">%s</text>`, padL, chartH-padB+14, s.Points[0].From.Format("15:04:05"))
			fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#424242">%s UTC</text>`, chartW-padR, chartH-padB+14, s.Points[n-1].T.Format("15:04:05"))
			break
		}
	}
	// Legend.
	lx := padL
	for _, s := range series {
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d" fill="#212121">%s</text>`,
			lx, chartH-14, colorOf(s.Rcode), lx+14, chartH-5, esc(s.Rcode))
		lx += 24 + 7*len(s.Rcode)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// propChart draws the propagation histogram: writes per delay bucket.
func propChart(bs []PropBucket) template.HTML {
	var b strings.Builder
	top := 0.0
	for _, x := range bs {
		top = max(top, float64(x.Count))
	}
	top = niceMax(top)
	frame(&b, "Registry write to visible: writes per delay bucket", top, "writes")
	if len(bs) == 0 {
		b.WriteString(`</svg>`)
		return template.HTML(b.String())
	}
	plotW, plotH := float64(chartW-padL-padR), float64(chartH-padT-padB)
	w := plotW / float64(len(bs))
	for i, x := range bs {
		h := plotH * float64(x.Count) / top
		x0 := float64(padL) + w*float64(i)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#1565c0"><title>%s: %d</title></rect>`,
			x0+1, float64(padT)+plotH-h, max(w-2, 1), h, esc("≤ "+leText(x.LE)), x.Count)
		if i%3 == 0 || i == len(bs)-1 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#424242">%s</text>`, x0+w/2, chartH-padB+14, esc(leText(x.LE)))
		}
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#424242">delay (upper bound of each bucket)</text>`, padL, chartH-8)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// leText shows a bucket bound in s or ms.
func leText(le float64) string {
	if math.IsInf(le, 1) {
		return "+Inf"
	}
	return time.Duration(le * float64(time.Second)).Round(time.Millisecond).String()
}
