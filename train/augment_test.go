package train

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/data"
)

// augmentRun trains the demo's model on its data for 6 steps with the
// given changes to the configuration and returns the adapter's bytes and
// the run's result.
func augmentRun(t *testing.T, dir, name string, set func(c *Config)) ([]byte, *Result) {
	t.Helper()
	model, data := filepath.Join(dir, "model"), filepath.Join(dir, "train.parquet")
	if _, err := os.Stat(model); err != nil {
		if err := writeDemoModel(model); err != nil {
			t.Fatal(err)
		}
		if err := writeDemoData(data, 40, 1); err != nil {
			t.Fatal(err)
		}
	}
	c := Defaults()
	c.Model, c.Data, c.Out = model, data, filepath.Join(dir, name)
	c.MaxSteps, c.BatchSize, c.MaxSeqLen, c.LR, c.LogEvery, c.SaveEvery, c.Seed = 6, 2, 128, 1e-3, 0, "3", 5
	set(&c)
	res, err := Run(context.Background(), c, RunOptions{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(c.Out, "adapter", "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	return raw, res
}

// TestAugmentDeterministic: NEFTune, token and text noise change what is learned
// (the adapter differs from a run without them), give a bitwise-identical
// adapter on 1 and 2 threads and after a resume, and do not change the
// schedule: the same number of steps with and without them.
func TestAugmentDeterministic(t *testing.T) {
	if testing.Short() {
		t.Skip("training runs: skipped with -short (the emulated arm64 run); the native run does them")
	}
	dir := t.TempDir()
	aug := func(threads int) func(c *Config) {
		return func(c *Config) {
			c.NEFTuneAlpha, c.TokenDropout, c.TokenReplace, c.TokenReplaceFrom, c.Threads = 5, 0.1, 0.1, "data", threads
			c.AugmentAnswers = true // text data: every token is an answer token
			c.TextWordSwap, c.TextCharNoise, c.TextFields = 0.1, 0.02, "all"
		}
	}
	plain, plainRes := augmentRun(t, dir, "plain", func(c *Config) {})
	one, oneRes := augmentRun(t, dir, "aug1", aug(1))
	two, _ := augmentRun(t, dir, "aug2", aug(2))
	if bytes.Equal(plain, one) {
		t.Error("augmentation changed nothing")
	}
	if !bytes.Equal(one, two) {
		t.Error("1 and 2 threads trained different adapters")
	}
	if oneRes.Total != plainRes.Total || oneRes.Steps != plainRes.Steps {
		t.Errorf("steps %d of %d with augmentation, %d of %d without", oneRes.Steps, oneRes.Total, plainRes.Steps, plainRes.Total)
	}
	// NEFTune alone and token noise alone each change the result; token
	// noise on the prompt only finds no prompt in text data.
	if tok, _ := augmentRun(t, dir, "prompt-only", func(c *Config) { c.TokenDropout = 0.2 }); !bytes.Equal(tok, plain) {
		t.Error("prompt-only token dropout changed text data")
	}
	if nef, _ := augmentRun(t, dir, "neftune", func(c *Config) { c.NEFTuneAlpha = 5 }); bytes.Equal(nef, plain) {
		t.Error("NEFTune changed nothing")
	}
	if tok, _ := augmentRun(t, dir, "tokens", func(c *Config) { c.TokenDropout, c.AugmentAnswers = 0.2, true }); bytes.Equal(tok, plain) {
		t.Error("token dropout changed nothing")
	}
	// Resume from step 3: the variants of the steps after it are the same.
	run := filepath.Join(dir, "aug1")
	os.RemoveAll(filepath.Join(run, "checkpoints", "step-6"))
	os.Remove(filepath.Join(run, "adapter", "adapter_model.safetensors"))
	c, err := ResumeConfig(run)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), *c, RunOptions{Resume: run}, nil, nil); err != nil {
		t.Fatal(err)
	}
	resumed, _ := os.ReadFile(filepath.Join(run, "adapter", "adapter_model.safetensors"))
	if !bytes.Equal(resumed, one) {
		t.Error("the resumed run trained another adapter")
	}
}

// TestTwoDatasets: two --data are concatenated (the second no longer
// replaces the first), or mixed by data_weights; the same settings give
// the same training set.
func TestTwoDatasets(t *testing.T) {
	dir := t.TempDir()
	model, a, b := filepath.Join(dir, "model"), filepath.Join(dir, "a.parquet"), filepath.Join(dir, "b.parquet")
	if err := writeDemoModel(model); err != nil {
		t.Fatal(err)
	}
	writeDemoData(a, 30, 1)
	writeDemoData(b, 90, 2)
	open := func(set func(c *Config)) *Session {
		c := Defaults()
		c.Model, c.Data, c.Out, c.MaxSeqLen = model, a+","+b, filepath.Join(dir, "run"), 256
		set(&c)
		s, err := OpenSession(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	if s := open(func(c *Config) {}); len(s.Data.Train) != 120 || s.Data.Rows != 120 {
		t.Errorf("concatenated: %d examples of %d rows, want 120", len(s.Data.Train), s.Data.Rows)
	}
	mixed := open(func(c *Config) { c.DataWeights = "1,1" })
	again := open(func(c *Config) { c.DataWeights = "1,1" })
	// a (30 at one half) runs out first, at about 60 draws.
	if n := len(mixed.Data.Train); n < 35 || n > 100 || mixed.Prints.Data != again.Prints.Data || mixed.Prints.Data == open(func(c *Config) {}).Prints.Data {
		t.Errorf("mixture of %d examples, fingerprint %s / %s", n, mixed.Prints.Data, again.Prints.Data)
	}
	for _, bad := range []Config{{Data: a + "," + b, DataWeights: "1"}, {Data: a + "," + b, DataColumns: "x;"}, {Data: a + "," + b, DataColumns: "prompt=q"}} {
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "data_") {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	// A dataset with its own columns beside one without.
	qa := filepath.Join(dir, "qa.csv")
	os.WriteFile(qa, []byte("question,answer\nwho is Zorb?,a robot\nwhere?,the moon\n"), 0o644)
	s := open(func(c *Config) {
		c.Data, c.DataColumns, c.DataFormats = a+","+qa, ";prompt=question,completion=answer", ";prompt_completion"
	})
	if len(s.Data.Train) != 32 || s.Data.Format != "mixed" {
		t.Errorf("with per-dataset columns: %d examples, format %s", len(s.Data.Train), s.Data.Format)
	}
	// A format given that the rows do not have is an error, not a guess.
	c := Defaults()
	c.Model, c.Data, c.Out, c.MaxSeqLen, c.DataFormats = model, a, filepath.Join(dir, "run"), 256, "chat"
	if _, err := OpenSession(c, nil); err == nil || !strings.Contains(err.Error(), `column "messages"`) {
		t.Errorf("a text dataset read as chat: %v", err)
	}
}

// TestTextWindows: with text_windows a long document is kept whole and
// each epoch trains on another window of it; the number of steps is the
// one without windows, and validation sees the documents' start.
func TestTextWindows(t *testing.T) {
	dir := t.TempDir()
	model, docs := filepath.Join(dir, "model"), filepath.Join(dir, "docs.txt")
	if err := writeDemoModel(model); err != nil {
		t.Fatal(err)
	}
	var text []byte
	for i := range 12 {
		for j := range 40 {
			text = append(text, fmt.Sprintf("doc %d sentence %d goes on. ", i, j)...)
		}
		text = append(text, "\n\n"...)
	}
	os.WriteFile(docs, text, 0o644)
	open := func(windows bool) *Session {
		c := Defaults()
		c.Model, c.Data, c.Out, c.MaxSeqLen, c.BatchSize, c.TextWindows, c.ValFraction, c.Seed = model, docs, filepath.Join(dir, "run"), 64, 2, windows, 0.2, 3
		s, err := OpenSession(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	plain, windowed := open(false), open(true)
	if plain.PerEpoch != windowed.PerEpoch || plain.TotalSteps() != windowed.TotalSteps() {
		t.Errorf("%d batches an epoch with windows, %d without", windowed.PerEpoch, plain.PerEpoch)
	}
	if n := len(windowed.Data.Train[0].IDs); n < 500 {
		t.Errorf("the first document has %d tokens: it was cut", n)
	}
	for _, e := range windowed.Val {
		if len(e.IDs) > 65 {
			t.Errorf("a validation example of %d tokens", len(e.IDs))
		}
	}
	tr, doc := windowed.Batches.Transform, windowed.Data.Train[0]
	if a, b := tr(0, 0, doc), tr(1, 0, doc); len(a.IDs) != 65 || slices.Equal(a.IDs, b.IDs) {
		t.Error("two epochs trained on the same window of a document")
	}
	if b, err := windowed.Batch(0); err != nil || b.T != 64 {
		t.Fatalf("batch %v: %v", b, err)
	}
	if _, err := Run(context.Background(), windowed.Config, RunOptions{}, nil, nil); err != nil {
		t.Fatal(err)
	}
}

// TestTextAugment: text-level variants are rendered again from the edited
// text (the supervised tokens are the answer's, unchanged), differ between
// epochs, and are the same for the same seed; validation is not varied.
func TestTextAugment(t *testing.T) {
	dir := t.TempDir()
	model, qa := filepath.Join(dir, "model"), filepath.Join(dir, "qa.csv")
	if err := writeDemoModel(model); err != nil {
		t.Fatal(err)
	}
	var csv strings.Builder
	csv.WriteString("prompt,completion\n")
	for i := range 40 {
		fmt.Fprintf(&csv, "please tell me what the robot number %d painted on the wall today,it painted %d blue stars\n", i, i)
	}
	os.WriteFile(qa, []byte(csv.String()), 0o644)
	open := func() *Session {
		c := Defaults()
		c.Model, c.Data, c.Out, c.Epochs, c.ValFraction, c.Seed = model, qa, filepath.Join(dir, "run"), 3, 0.2, 1
		c.TextWordSwap, c.TextWordDelete, c.TextCharNoise = 0.2, 0.1, 0.05
		s, err := OpenSession(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s := open()
	if len(s.Data.Variants) != len(s.Data.Train) || len(s.Data.Variants[0]) != 3 || len(s.Val) == 0 {
		t.Fatalf("%d variants lists for %d examples; %d validation", len(s.Data.Variants), len(s.Data.Train), len(s.Val))
	}
	supervised := func(ex *data.Example) string {
		var ids []int32
		for i, m := range ex.Mask {
			if m {
				ids = append(ids, ex.IDs[i])
			}
		}
		return s.Tok.Decode(ids, false)
	}
	differ := 0
	for i, base := range s.Data.Train {
		for _, v := range s.Data.Variants[i] {
			if supervised(v) != supervised(base) {
				t.Fatalf("example %d: a variant supervises %q, the row %q", i, supervised(v), supervised(base))
			}
			if !slices.Equal(v.IDs, base.IDs) {
				differ++
			}
		}
	}
	if differ < len(s.Data.Train) {
		t.Errorf("only %d of %d variants differ from their row", differ, 3*len(s.Data.Train))
	}
	again := open()
	if !slices.Equal(again.Data.Variants[5][1].IDs, s.Data.Variants[5][1].IDs) || again.Prints.Data != s.Prints.Data {
		t.Error("the same seed gave other variants")
	}
	a, _ := s.Batch(0)
	if b, _ := s.Batch(int64(s.PerEpoch)); a == nil || b == nil {
		t.Fatal("no batches")
	}
}
