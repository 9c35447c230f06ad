package checkpoints

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/lora"
)

// writeTestCheckpoint writes run's checkpoint at step: the adapter of a tiny
// model and two more files.
func writeTestCheckpoint(t *testing.T, run string, step int, val *float64) *Checkpoint {
	t.Helper()
	ad, err := lora.Apply(tinyModel(t, 32), lora.Config{Rank: 2, Alpha: 4, Seed: uint64(step)})
	if err != nil {
		t.Fatal(err)
	}
	ck, err := WriteCheckpoint(run, step, val, func(dir string) error {
		if err := WriteAdapterFiles(dir, ad, "base", &AdapterInfo{Quant: "q8_0", Step: step}); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "trainer_state.json"), []byte(`{"step": 1}`), 0o666); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("lr: 0.1\n"), 0o666)
	})
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

// TestCheckpointDamage: a checkpoint reads back whole; one byte changed in
// any of its files (the manifest included), a truncated or a missing file,
// is an error naming that file, and the newest intact checkpoint is used
// instead.
func TestCheckpointDamage(t *testing.T) {
	run := t.TempDir()
	writeTestCheckpoint(t, run, 1, nil)
	ck := writeTestCheckpoint(t, run, 2, nil)
	if _, err := OpenCheckpoint(ck.Dir); err != nil {
		t.Fatal(err)
	}
	names := []string{ManifestFile}
	for _, f := range ck.Manifest.Files {
		names = append(names, f.Name)
	}
	if len(names) != 6 {
		t.Fatalf("files %v", names)
	}
	damage := map[string]func(p string){
		"flipped byte": func(p string) {
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0xff
			os.WriteFile(p, b, 0o644)
		},
		"truncated": func(p string) {
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-1], 0o644)
		},
		"missing": func(p string) { os.Remove(p) },
	}
	for how, hurt := range damage {
		for _, name := range names {
			p := filepath.Join(ck.Dir, name)
			orig, _ := os.ReadFile(p)
			hurt(p)
			_, err := OpenCheckpoint(ck.Dir)
			var ce *CheckpointError
			if !errors.As(err, &ce) || ce.File != name || !strings.Contains(err.Error(), ck.Dir) {
				t.Errorf("%s %s: error %v, want one naming %s", how, name, err, name)
			}
			latest, skipped, err := LatestCheckpoint(run)
			if err != nil || latest == nil || latest.Manifest.Step != 1 || len(skipped) != 1 || !strings.Contains(skipped[0].Error(), name) {
				t.Errorf("%s %s: latest %v, skipped %v, %v", how, name, latest, skipped, err)
			}
			os.WriteFile(p, orig, 0o644)
		}
	}
	if _, err := OpenCheckpoint(ck.Dir); err != nil {
		t.Fatalf("restored: %v", err)
	}
}

// TestCheckpointVersion: a manifest of a newer format version is refused
// with a message that says so; an unfinished folder (no manifest) is named
// as such.
func TestCheckpointVersion(t *testing.T) {
	run := t.TempDir()
	ck := writeTestCheckpoint(t, run, 3, nil)
	m := ck.Manifest
	m.Version = CheckpointVersion + 98
	raw, err := encodeManifest(m)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(ck.Dir, ManifestFile), raw, 0o644)
	_, err = OpenCheckpoint(ck.Dir)
	if err == nil || !strings.Contains(err.Error(), "version 99") || !strings.Contains(err.Error(), "newer lowrank") {
		t.Errorf("newer version: %v", err)
	}
	os.Remove(filepath.Join(ck.Dir, ManifestFile))
	if _, err := OpenCheckpoint(ck.Dir); err == nil || !strings.Contains(err.Error(), "never finished") {
		t.Errorf("no manifest: %v", err)
	}
	if _, err := OpenCheckpoint(filepath.Join(run, "nothing")); err == nil {
		t.Error("a missing folder opened")
	}
}

// TestPruneCheckpoints: the newest N are kept and the one with the best
// validation loss; folder names that are not step-N are left alone.
func TestPruneCheckpoints(t *testing.T) {
	run := t.TempDir()
	for s, v := range []float64{5, 3, 1, 4, 6, 7} {
		val := v
		writeTestCheckpoint(t, run, (s+1)*10, &val)
	}
	os.MkdirAll(filepath.Join(CheckpointsDir(run), "step-07"), 0o755) // not a name lowrank writes
	os.MkdirAll(filepath.Join(CheckpointsDir(run), "notes"), 0o755)
	removed, err := PruneCheckpoints(run, 2)
	if err != nil {
		t.Fatal(err)
	}
	steps, _ := ListCheckpoints(run)
	if !slices.Equal(steps, []int{30, 50, 60}) || len(removed) != 3 {
		t.Errorf("kept %v, removed %v; want 30 (best), 50, 60", steps, removed)
	}
	for _, d := range []string{"step-07", "notes"} {
		if _, err := os.Stat(filepath.Join(CheckpointsDir(run), d)); err != nil {
			t.Errorf("%s removed", d)
		}
	}
	if removed, _ := PruneCheckpoints(run, 0); len(removed) != 0 {
		t.Errorf("keep-last 0 removed %v", removed)
	}
}

// TestAdapterInfo: lowrank.json is written beside the PEFT files and read
// back; an adapter without one reads as nil; a newer version is refused;
// saving again replaces the folder whole (no file of the old one remains).
func TestAdapterInfo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "adapter")
	ad, err := lora.Apply(tinyModel(t, 32), lora.Config{Rank: 2, Alpha: 4})
	if err != nil {
		t.Fatal(err)
	}
	in := &AdapterInfo{Quant: "nf4", DoubleQuant: true, GPTQ: &GPTQInfo{Tokens: 256, Tune: 1, Seed: 7}, ChatTemplate: "{{ x }}", ChatTemplateName: "t.jinja", MaxSeqLen: 128, Step: 42}
	in.Base.Path, in.Base.Fingerprint = "m", "sha256:ab"
	if err := SaveAdapter(dir, ad, "m", in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadAdapterInfo(dir)
	if err != nil || out == nil || out.Quant != "nf4" || *out.GPTQ != *in.GPTQ || out.ChatTemplate != in.ChatTemplate || out.MaxSeqLen != 128 || out.Base != in.Base || out.Step != 42 || out.Version != AdapterInfoVersion {
		t.Fatalf("read back %+v, %v", out, err)
	}
	os.WriteFile(filepath.Join(dir, "stray"), nil, 0o644)
	if err := SaveAdapter(dir, ad, "m", nil); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("after saving again without info: %d files, want the 2 PEFT files", len(entries))
	}
	if i, err := ReadAdapterInfo(dir); i != nil || err != nil {
		t.Errorf("no lowrank.json: %v, %v", i, err)
	}
	os.WriteFile(filepath.Join(dir, AdapterInfoFile), []byte(`{"format":"lowrank-adapter","version":7}`), 0o644)
	if _, err := ReadAdapterInfo(dir); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("newer lowrank.json: %v", err)
	}
}
