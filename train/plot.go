package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot renders a run's metrics.jsonl to dir/loss.png: training and validation
// loss over steps, and the learning rate below. It returns the PNG's path.
func Plot(runDir string) (string, error) {
	out := filepath.Join(runDir, "loss.png")
	return out, PlotRuns(out, runDir)
}

// runCurves are one run's points from its metrics.jsonl.
type runCurves struct {
	name           string
	train, val, lr plotter.XYs
}

func readCurves(runDir string) (*runCurves, error) {
	path := filepath.Join(runDir, "metrics.jsonl")
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("plot: %w", err)
	}
	defer f.Close()
	rc := &runCurves{name: filepath.Base(filepath.Clean(runDir))}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		var m map[string]float64
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, fmt.Errorf("plot: %s line %d: %v", path, line, err)
		}
		step := m["step"]
		if v, ok := m["loss"]; ok {
			rc.train = append(rc.train, plotter.XY{X: step, Y: v})
		}
		if v, ok := m["val_loss"]; ok {
			rc.val = append(rc.val, plotter.XY{X: step, Y: v})
		}
		if v, ok := m["lr"]; ok {
			rc.lr = append(rc.lr, plotter.XY{X: step, Y: v})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("plot: %s: %v", path, err)
	}
	if len(rc.train) == 0 {
		return nil, fmt.Errorf("plot: %s has no training steps yet", path)
	}
	return rc, nil
}

// PlotRuns renders one or more runs into one PNG at out: training loss
// (solid) and validation loss (dashed, with points) per run in its own
// colour, and the learning rates below, so runs can be compared.
func PlotRuns(out string, runDirs ...string) error {
	if len(runDirs) == 0 {
		return fmt.Errorf("plot: no run directory")
	}
	runs := make([]*runCurves, len(runDirs))
	names := map[string]int{}
	for i, d := range runDirs {
		rc, err := readCurves(d)
		if err != nil {
			return err
		}
		if names[rc.name]++; names[rc.name] > 1 || len(runDirs) > 1 && rc.name == "." {
			rc.name = filepath.Clean(d) // two runs with the same base name: the full path tells them apart
		}
		runs[i] = rc
	}
	loss := plot.New()
	loss.Title.Text = "loss"
	if len(runs) == 1 {
		loss.Title.Text = "loss — " + runs[0].name
	}
	loss.X.Label.Text = "step"
	loss.Y.Label.Text = "loss (nats/token)"
	loss.Add(plotter.NewGrid())
	loss.Legend.Top = true
	lr := plot.New()
	lr.X.Label.Text = "step"
	lr.Y.Label.Text = "learning rate"
	lr.Add(plotter.NewGrid())
	lr.Legend.Top = true
	for i, rc := range runs {
		prefix := ""
		if len(runs) > 1 {
			prefix = rc.name + " "
		}
		tcol, vcol := plotColor(0), plotColor(1)
		if len(runs) > 1 {
			tcol, vcol = plotColor(i), plotColor(i) // one colour per run; validation is the dashed line
		}
		tl, err := plotter.NewLine(rc.train)
		if err != nil {
			return err
		}
		tl.Color = tcol
		loss.Add(tl)
		loss.Legend.Add(prefix+"train", tl)
		if len(rc.val) > 0 {
			vl, vp, err := plotter.NewLinePoints(rc.val)
			if err != nil {
				return err
			}
			vl.Color, vp.Color = vcol, vcol
			vl.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
			loss.Add(vl, vp)
			loss.Legend.Add(prefix+"validation", vl, vp)
		}
		if len(rc.lr) > 0 {
			ll, err := plotter.NewLine(rc.lr)
			if err != nil {
				return err
			}
			ll.Color = tcol
			lr.Add(ll)
			if len(runs) > 1 {
				lr.Legend.Add(rc.name, ll)
			}
		}
	}
	img := vgimg.New(9*vg.Inch, 7*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter}
	plots := [][]*plot.Plot{{loss}, {lr}}
	canvases := plot.Align(plots, tiles, dc)
	loss.Draw(canvases[0][0])
	lr.Draw(canvases[1][0])
	w, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		w.Close()
		return fmt.Errorf("plot: %s: %w", out, err)
	}
	return w.Close()
}

// plotColor is the i-th colour of a ten-colour palette (matplotlib's tab10).
func plotColor(i int) color.Color {
	p := [][3]uint8{{31, 119, 180}, {214, 39, 40}, {44, 160, 44}, {255, 127, 14}, {148, 103, 189},
		{140, 86, 75}, {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}}
	c := p[i%len(p)]
	return color.RGBA{R: c[0], G: c[1], B: c[2], A: 255}
}
