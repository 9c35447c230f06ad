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
	path := filepath.Join(runDir, "metrics.jsonl")
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("plot: %w", err)
	}
	defer f.Close()
	var trainPts, valPts, lrPts plotter.XYs
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		var m map[string]float64
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return "", fmt.Errorf("plot: %s line %d: %v", path, line, err)
		}
		step := m["step"]
		if v, ok := m["loss"]; ok {
			trainPts = append(trainPts, plotter.XY{X: step, Y: v})
		}
		if v, ok := m["val_loss"]; ok {
			valPts = append(valPts, plotter.XY{X: step, Y: v})
		}
		if v, ok := m["lr"]; ok {
			lrPts = append(lrPts, plotter.XY{X: step, Y: v})
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("plot: %s: %v", path, err)
	}
	if len(trainPts) == 0 {
		return "", fmt.Errorf("plot: %s has no training steps yet", path)
	}
	loss := plot.New()
	loss.Title.Text = "loss — " + filepath.Base(filepath.Clean(runDir))
	loss.X.Label.Text = "step"
	loss.Y.Label.Text = "loss (nats/token)"
	loss.Add(plotter.NewGrid())
	loss.Legend.Top = true
	tl, err := plotter.NewLine(trainPts)
	if err != nil {
		return "", err
	}
	tl.Color = plotColor(0)
	loss.Add(tl)
	loss.Legend.Add("train", tl)
	if len(valPts) > 0 {
		vl, vp, err := plotter.NewLinePoints(valPts)
		if err != nil {
			return "", err
		}
		vl.Color, vp.Color = plotColor(1), plotColor(1)
		loss.Add(vl, vp)
		loss.Legend.Add("validation", vl, vp)
	}
	lr := plot.New()
	lr.X.Label.Text = "step"
	lr.Y.Label.Text = "learning rate"
	lr.Add(plotter.NewGrid())
	ll, err := plotter.NewLine(lrPts)
	if err != nil {
		return "", err
	}
	ll.Color = plotColor(2)
	lr.Add(ll)

	img := vgimg.New(9*vg.Inch, 7*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter}
	plots := [][]*plot.Plot{{loss}, {lr}}
	canvases := plot.Align(plots, tiles, dc)
	loss.Draw(canvases[0][0])
	lr.Draw(canvases[1][0])
	out := filepath.Join(runDir, "loss.png")
	w, err := os.Create(out)
	if err != nil {
		return "", fmt.Errorf("plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		w.Close()
		return "", fmt.Errorf("plot: %s: %w", out, err)
	}
	return out, w.Close()
}

func plotColor(i int) color.Color {
	return []color.Color{color.RGBA{R: 31, G: 119, B: 180, A: 255}, color.RGBA{R: 214, G: 39, B: 40, A: 255}, color.RGBA{R: 44, G: 160, B: 44, A: 255}}[i]
}
