package hfcache

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
)

// convertRev is the branch where the hub keeps its Parquet conversion of a
// dataset stored in another format; "~parquet" is its short name.
const convertRev = "refs/convert/parquet"

// datasetPrefix starts a dataset reference, so that a typo in a relative
// path never becomes a network request.
const datasetPrefix = "hf://datasets/"

// IsDatasetRef reports whether ref is meant as a hub dataset (hf://...).
func IsDatasetRef(ref string) bool { return strings.HasPrefix(ref, "hf://") }

// ParseDatasetRef splits hf://datasets/org/name[@revision][/path]: path,
// a folder of the repository (a configuration of the Parquet conversion,
// say), is as huggingface_hub's HfFileSystem reads such names. A revision
// holding '/' is written URL-encoded (refs%2Fconvert%2Fparquet) or, for
// the Parquet conversion, as ~parquet.
func ParseDatasetRef(ref string) (id, rev, sub string, err error) {
	rest, ok := strings.CutPrefix(ref, datasetPrefix)
	if !ok {
		return "", "", "", fmt.Errorf("%s: a hub dataset is named hf://datasets/ORG/NAME[@REVISION][/FOLDER]", ref)
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 2 {
		return "", "", "", fmt.Errorf("%s: a hub dataset is named hf://datasets/ORG/NAME[@REVISION][/FOLDER]", ref)
	}
	name, rev, at := strings.Cut(parts[1], "@")
	id = parts[0] + "/" + name
	if len(parts) == 3 {
		sub = strings.Trim(parts[2], "/")
	}
	rev = strings.ReplaceAll(strings.ReplaceAll(rev, "%2F", "/"), "%2f", "/")
	if rev == "~parquet" {
		rev = convertRev
	}
	if !idPattern.MatchString(id) || (sub != "" && !validName(sub)) || (at && !validName(rev)) {
		return "", "", "", fmt.Errorf("%s: not a hub dataset name: want hf://datasets/ORG/NAME[@REVISION][/FOLDER]", ref)
	}
	return id, orMain(rev), sub, nil
}

// splitNames are the split names datasets use; a file named by none of
// them (nor by the split asked for) is in no split: all of them train.
var splitNames = []string{"train", "validation", "valid", "val", "dev", "test", "eval"}

// ValidationSplits are the names validation shards go by, the hub's first.
var ValidationSplits = []string{"validation", "valid", "val", "dev"}

// InSplit reports whether a dataset file (its path relative to the
// dataset's root, with '/') belongs to split by the hub's naming: a file
// named split[-_.]… (train-00000-of-00004.parquet, validation.jsonl) or a
// folder named split (default/train/0000.parquet).
func InSplit(rel, split string) bool {
	base := path.Base(rel)
	if rest, ok := strings.CutPrefix(base, split); ok && rest != "" && strings.ContainsRune("-_.", rune(rest[0])) {
		return true
	}
	return slices.Contains(strings.Split(path.Dir(rel), "/"), split)
}

// selectSplit keeps of a dataset's Parquet files (relative to its root)
// those of split and of the validation splits; when none is named by a
// split at all, every file (the whole dataset is its train split).
func selectSplit(files []string, split string) ([]string, error) {
	want := append([]string{split}, ValidationSplits...)
	var named, sel []string
	for _, f := range files {
		for _, s := range append(splitNames, split) {
			if InSplit(f, s) {
				named = append(named, s)
				break
			}
		}
		for _, s := range want {
			if InSplit(f, s) {
				sel = append(sel, f)
				break
			}
		}
	}
	if len(named) == 0 {
		return files, nil
	}
	for _, f := range sel {
		if InSplit(f, split) {
			return sel, nil
		}
	}
	slices.Sort(named)
	return nil, fmt.Errorf("no split %q: its splits are %s (--split picks one)", split, strings.Join(slices.Compact(named), ", "))
}

// parquetUnder lists the Parquet files under folder sub ("" the root),
// relative to it.
func parquetUnder(files []string, sub string) []string {
	var out []string
	for _, f := range files {
		rel := f
		if sub != "" {
			var ok bool
			if rel, ok = strings.CutPrefix(f, sub+"/"); !ok {
				continue
			}
		}
		if strings.EqualFold(path.Ext(rel), ".parquet") {
			out = append(out, rel)
		}
	}
	return out
}

// pickConfig chooses the configuration of the Parquet conversion: the
// folder "default", else the only one.
func pickConfig(id string, files []string) (string, error) {
	var configs []string
	for _, f := range files {
		if c, _, ok := strings.Cut(f, "/"); ok && strings.EqualFold(path.Ext(f), ".parquet") && !slices.Contains(configs, c) {
			configs = append(configs, c)
		}
	}
	sort.Strings(configs)
	switch {
	case slices.Contains(configs, "default"):
		return "default", nil
	case len(configs) == 1:
		return configs[0], nil
	case len(configs) == 0:
		return "", fmt.Errorf("%s: its Parquet conversion holds no Parquet files", id)
	}
	return "", fmt.Errorf("%s has several configurations (%s): pick one as hf://datasets/%s@~parquet/CONFIG", id, strings.Join(configs, ", "), id)
}

// PullDataset downloads the Parquet files of dataset id at rev (under
// folder sub) that split and the validation splits need, from the
// repository or, where it holds no Parquet, from the hub's conversion
// (refs/convert/parquet). It returns the local folder they are under and
// their paths.
func (c *Client) PullDataset(ctx context.Context, id, rev, sub, split string) (root string, files []string, err error) {
	commit, all, err := c.revision(ctx, datasets, id, rev)
	if err != nil {
		return "", nil, err
	}
	parquet := parquetUnder(all, sub)
	if len(parquet) == 0 && sub == "" && rev != convertRev {
		// Not stored as Parquet: the hub's own conversion of it.
		if commit, all, err = c.revision(ctx, datasets, id, convertRev); err != nil {
			return "", nil, fmt.Errorf("%s@%s holds no Parquet files, and the hub has no Parquet conversion of it: %v", id, rev, err)
		}
		rev = convertRev
		if sub, err = pickConfig(id, all); err != nil {
			return "", nil, err
		}
		parquet = parquetUnder(all, sub)
	}
	if len(parquet) == 0 {
		where := ""
		if sub != "" {
			where = " under " + sub
		}
		return "", nil, fmt.Errorf("%s@%s holds no Parquet files%s", id, rev, where)
	}
	sel, err := selectSplit(parquet, split)
	if err != nil {
		return "", nil, fmt.Errorf("%s@%s: %v", id, rev, err)
	}
	repoFiles := make([]string, len(sel))
	for i, f := range sel {
		repoFiles[i] = path.Join(sub, f)
	}
	snap, err := c.fetch(ctx, datasets, id, rev, commit, repoFiles)
	if err != nil {
		return "", nil, err
	}
	root = filepath.Join(snap, filepath.FromSlash(sub))
	for _, f := range sel {
		files = append(files, filepath.Join(root, filepath.FromSlash(f)))
	}
	return root, files, nil
}

// cachedDataset finds a dataset in the cache: the folder and Parquet
// files (relative to it) of the snapshot of rev, or of its conversion.
func cachedDataset(id, rev, sub string) (root string, files []string) {
	try := func(rev, sub string) (string, []string) {
		snap, err := datasets.snapshot(id, rev)
		if err != nil || snap == "" {
			return "", nil
		}
		var all []string
		filepath.WalkDir(snap, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if rel, err := filepath.Rel(snap, p); err == nil {
					all = append(all, filepath.ToSlash(rel))
				}
			}
			return nil
		})
		if sub == "" && rev == convertRev {
			var err error
			if sub, err = pickConfig(id, all); err != nil {
				return "", nil
			}
		}
		return filepath.Join(snap, filepath.FromSlash(sub)), parquetUnder(all, sub)
	}
	if root, files = try(rev, sub); len(files) == 0 && sub == "" && rev != convertRev {
		root, files = try(convertRev, "")
	}
	return root, files
}

var (
	dsMu   sync.Mutex
	dsSeen = map[string]resolved{} // by ref and split
	dsAll  = map[string]resolved{} // by ref: every file resolved for it so far
)

type resolved struct {
	root  string
	files []string
}

// Dataset resolves a hub dataset reference (ParseDatasetRef) for split
// ("" is train): the local folder its files are under, and the Parquet
// files of that split and of the validation splits. What the cache lacks
// is downloaded when Hub is set (not under HF_HUB_OFFLINE). Results are
// kept for the process: one run asks once.
func Dataset(ref, split string) (root string, files []string, err error) {
	if split == "" {
		split = "train"
	}
	dsMu.Lock()
	defer dsMu.Unlock()
	if r, ok := dsSeen[ref+"\x00"+split]; ok {
		return r.root, r.files, nil
	}
	id, rev, sub, err := ParseDatasetRef(ref)
	if err != nil {
		return "", nil, err
	}
	root, rel := cachedDataset(id, rev, sub)
	if sel, err := selectSplit(rel, split); err == nil && len(sel) > 0 {
		for _, f := range sel {
			files = append(files, filepath.Join(root, filepath.FromSlash(f)))
		}
	} else if canDownload() {
		c := Hub()
		if c.Log != nil {
			c.Log("downloading from the hub", "dataset", id, "revision", rev, "split", split)
		}
		if root, files, err = c.PullDataset(context.Background(), id, rev, sub, split); err != nil {
			return "", nil, err
		}
	} else {
		hint := "download it on a machine online (lowrank pull " + ref + "), or give a local path"
		if Offline() {
			hint += " (HF_HUB_OFFLINE is set)"
		}
		if len(rel) > 0 {
			return "", nil, fmt.Errorf("%s: the Hugging Face cache %s holds it, but %v: %s", ref, Dir(), err, hint)
		}
		return "", nil, fmt.Errorf("%s: not in the Hugging Face cache %s: %s", ref, Dir(), hint)
	}
	dsSeen[ref+"\x00"+split] = resolved{root, files}
	all := dsAll[ref]
	all.root = root
	for _, f := range files {
		if !slices.Contains(all.files, f) {
			all.files = append(all.files, f)
		}
	}
	dsAll[ref] = all
	return root, files, nil
}

// DatasetFiles are the files of a hub dataset resolved so far, whatever
// the split (each resolution brings the validation splits' files too), or,
// before any, those of its train split: what asks which splits a dataset
// has, without asking the hub once per split name.
func DatasetFiles(ref string) (root string, files []string, err error) {
	dsMu.Lock()
	all, ok := dsAll[ref]
	dsMu.Unlock()
	if ok {
		return all.root, all.files, nil
	}
	return Dataset(ref, "")
}
