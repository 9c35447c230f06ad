package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestWrite: a completed write replaces the file; a failed one leaves the
// old file and no temporary file behind.
func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.bin")
	os.WriteFile(p, []byte("old"), 0o644)
	boom := errors.New("disk full")
	err := Write(p, func(f *os.File) error {
		f.Write([]byte("half"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v", err)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Errorf("failed write changed the file: %q", b)
	}
	if err := Write(p, func(f *os.File) error { _, err := f.Write([]byte("new")); return err }); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Errorf("file %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the directory, want 1 (temporary files left)", len(entries))
	}
}

// TestWriteDir: a folder appears whole; replacing one (by exchange, and by
// the move-aside fallback) leaves the new contents and nothing else; a
// failed fill leaves the old folder untouched and no temporary behind.
func TestWriteDir(t *testing.T) {
	for _, swap := range []bool{true, false} {
		if !swap {
			exchangeFn = func(a, b string) error { return errors.ErrUnsupported }
		}
		parent := t.TempDir()
		dir := filepath.Join(parent, "adapter")
		write := func(content string) error {
			return WriteDir(dir, func(tmp string) error {
				if err := os.WriteFile(filepath.Join(tmp, "a"), []byte(content), 0o666); err != nil {
					return err
				}
				if content == "fail" {
					return errors.New("disk full")
				}
				return os.WriteFile(filepath.Join(tmp, "b"), []byte(content), 0o666)
			})
		}
		for _, c := range []string{"one", "two", "fail"} {
			err := write(c)
			if (err != nil) != (c == "fail") {
				t.Fatalf("swap %v: write %q: %v", swap, c, err)
			}
			for _, f := range []string{"a", "b"} {
				if b, _ := os.ReadFile(filepath.Join(dir, f)); c != "fail" && string(b) != c || c == "fail" && string(b) != "two" {
					t.Errorf("swap %v after %q: %s holds %q", swap, c, f, b)
				}
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 1 {
				t.Errorf("swap %v after %q: %d entries beside the folder, want only it", swap, c, len(entries))
			}
		}
		exchangeFn = exchange
	}
}

// TestRemoveTemps: what killed writers left is removed, a folder moved
// aside whose replacement never arrived is put back, and files keep the
// umask's mode (0666 less it, as os.Create makes them).
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, TempPrefix+"adapter_model.safetensors-abc"), []byte("half"), 0o600)
	os.Mkdir(filepath.Join(dir, TempPrefix+"step-3-abc"), 0o755)
	os.Mkdir(filepath.Join(dir, TempPrefix+"old-best"), 0o755) // best/ missing: put back
	os.WriteFile(filepath.Join(dir, TempPrefix+"old-best", "x"), []byte("kept"), 0o644)
	os.Mkdir(filepath.Join(dir, "adapter"), 0o755)
	os.Mkdir(filepath.Join(dir, TempPrefix+"old-adapter"), 0o755) // adapter/ present: stale copy
	os.WriteFile(filepath.Join(dir, "metrics.jsonl"), nil, 0o644)
	removed, err := RemoveTemps(dir)
	if err != nil || len(removed) != 3 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "best", "x")); string(b) != "kept" {
		t.Errorf("best/ not recovered: %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("left %d entries, want adapter, best, metrics.jsonl", len(entries))
	}
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("x")); err != nil {
		t.Fatal(err)
	}
	want := os.FileMode(0o666)
	if probe, err := os.Create(filepath.Join(dir, "probe")); err == nil {
		st, _ := probe.Stat()
		want = st.Mode().Perm()
		probe.Close()
	}
	if st, _ := os.Stat(p); st.Mode().Perm() != want {
		t.Errorf("mode %v, os.Create gives %v", st.Mode().Perm(), want)
	}
}

// TestRemoveTempsOf: only the leftovers of one path go; an old copy whose
// new one never arrived is put back.
func TestRemoveTempsOf(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{TempPrefix + "m.gguf-abc", TempPrefix + "m.gguf-def", TempPrefix + "m.gguf.bak-abc", TempPrefix + "n.gguf-abc", "m.gguf"} {
		os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644)
	}
	os.Mkdir(filepath.Join(dir, TempPrefix+"old-merged"), 0o755)
	os.Mkdir(filepath.Join(dir, TempPrefix+"merged-abc"), 0o755)
	removed, err := RemoveTempsOf(filepath.Join(dir, "m.gguf"))
	if err != nil || len(removed) != 2 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	if removed, err = RemoveTempsOf(filepath.Join(dir, "merged") + "/"); err != nil || len(removed) != 1 {
		t.Fatalf("removed %v, %v", removed, err)
	}
	var left []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := []string{TempPrefix + "m.gguf.bak-abc", TempPrefix + "n.gguf-abc", "m.gguf", "merged"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
}

// TestErrorsNameTheDestination: a failure inside a temporary file or folder
// is reported under the name the caller asked for, not the temporary one.
func TestErrorsNameTheDestination(t *testing.T) {
	d := t.TempDir()
	full := errors.New("no space left on device")
	err := WriteDir(filepath.Join(d, "best"), func(tmp string) error {
		return Write(filepath.Join(tmp, "a.safetensors"), func(f *os.File) error {
			return &os.PathError{Op: "write", Path: f.Name(), Err: full}
		})
	})
	if want := "write " + filepath.Join(d, "best", "a.safetensors") + ": no space left on device"; err == nil || err.Error() != want || !errors.Is(err, full) {
		t.Errorf("error %q, want %q", err, want)
	}
}
