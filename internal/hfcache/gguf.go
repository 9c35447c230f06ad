package hfcache

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// shardSuffix is gguf-split's file naming: name-00001-of-00003.gguf.
var shardSuffix = regexp.MustCompile(`(?i)-(\d{5})-of-(\d{5})$`)

// ggufStem is a GGUF file's base name without .gguf and without a shard
// suffix; shards is its shard count (0: one file).
func ggufStem(file string) (stem string, shards int) {
	stem = strings.TrimSuffix(path.Base(file), path.Ext(file))
	if m := shardSuffix.FindStringSubmatch(stem); m != nil {
		fmt.Sscan(strings.TrimLeft(m[2], "0"), &shards)
		stem = stem[:len(stem)-len(m[0])]
	}
	return stem, shards
}

// isModelGGUF reports whether a repository file is a model's GGUF (not a
// vision projector, which llama.cpp also keeps in such repositories).
func isModelGGUF(file string) bool {
	return strings.EqualFold(path.Ext(file), ".gguf") && !strings.Contains(strings.ToLower(path.Base(file)), "mmproj")
}

// tagOf is the quantization a GGUF file's name ends with, as llama.cpp's
// -hf reads it: the last part after a '-' or '.' (model-Q4_K_M.gguf: Q4_K_M).
func tagOf(file string) string {
	stem, _ := ggufStem(file)
	if i := strings.LastIndexAny(stem, "-."); i >= 0 {
		return stem[i+1:]
	}
	return stem
}

// ggufTags lists the tags of a repository's GGUF files, for messages.
func ggufTags(files []string) []string {
	seen := map[string]bool{}
	var tags []string
	for _, f := range files {
		if t := tagOf(f); isModelGGUF(f) && !seen[strings.ToUpper(t)] {
			seen[strings.ToUpper(t)] = true
			tags = append(tags, t)
		}
	}
	sort.Strings(tags)
	return tags
}

// matchGGUF picks the GGUF file tag names among a repository's files: the
// file itself (its path or base name), else the one whose name ends in
// -TAG or .TAG, case-insensitively (Q4_K_M matches model-q4_k_m.gguf). No
// match, several, or a model split into shards (which lowrank does not
// read) are errors that list what there is.
func matchGGUF(files []string, tag string) (string, error) {
	var exact, byTag []string
	for _, f := range files {
		if !strings.EqualFold(path.Ext(f), ".gguf") {
			continue
		}
		if f == tag || path.Base(f) == tag {
			exact = append(exact, f)
		}
		if isModelGGUF(f) && strings.EqualFold(tagOf(f), tag) {
			byTag = append(byTag, f)
		}
	}
	if len(exact) == 1 {
		byTag = exact
	}
	// The shards of one split model count as one match.
	first := map[string][]string{}
	for _, f := range byTag {
		stem, _ := ggufStem(f)
		first[path.Join(path.Dir(f), stem)] = append(first[path.Join(path.Dir(f), stem)], f)
	}
	switch {
	case len(first) == 0:
		tags := ggufTags(files)
		if len(tags) == 0 {
			return "", fmt.Errorf("no GGUF file named or tagged %q: the repository has no GGUF files", tag)
		}
		return "", fmt.Errorf("no GGUF file named or tagged %q: its tags are %s", tag, strings.Join(tags, ", "))
	case len(first) > 1:
		sort.Strings(byTag)
		return "", fmt.Errorf("tag %q names several GGUF files (%s): give the file name instead", tag, strings.Join(byTag, ", "))
	}
	f := byTag[0]
	if _, shards := ggufStem(f); shards > 1 {
		return "", fmt.Errorf("%s is split into %d files, and lowrank reads one-file GGUF: merge them with llama.cpp's llama-gguf-split --merge, or pick another tag", f, shards)
	}
	return f, nil
}

// cachedGGUF lists the GGUF files of a cached snapshot, as repository paths.
func cachedGGUF(snap string) []string {
	var files []string
	filepath.WalkDir(snap, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.EqualFold(filepath.Ext(p), ".gguf") {
			if rel, err := filepath.Rel(snap, p); err == nil {
				files = append(files, filepath.ToSlash(rel))
			}
		}
		return nil
	})
	return files
}
