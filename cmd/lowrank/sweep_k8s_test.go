package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// TestSweepK8sManifest decodes the emitted manifest strictly (unknown or
// misplaced fields are errors) into Kubernetes' own API types: a
// ConfigMap holding the sweep file and an Indexed Job with one completion
// per task, the parallelism asked for, the index variable, the grace
// period, the resources and the volumes.
func TestSweepK8sManifest(t *testing.T) {
	dir := t.TempDir()
	f := writeSweep(t, dir)
	raw, _ := os.ReadFile(f)
	file := strings.Replace(string(raw), "out: "+filepath.Join(dir, "runs"), "out: runs/sweep", 1)
	rel := filepath.Join(dir, "rel.yaml")
	os.WriteFile(rel, []byte(file), 0o644)
	code, out, errOut := capture(t, "sweep", rel, "--emit", "k8s", "--image", "registry.example/lowrank:1", "--parallel", "3",
		"--threads", "2", "--mem", "2Gi", "--pvc", "runs-pvc", "--grace", "240")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	docs := strings.Split(out, "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("want 2 documents:\n%s", out)
	}
	docs[0] += "\n" // the separator's newline ends the first document
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &cm); err != nil {
		t.Fatalf("ConfigMap: %v\n%s", err, docs[0])
	}
	if cm.Kind != "ConfigMap" || cm.Data["sweep.yaml"] != file {
		t.Errorf("ConfigMap %s holds %q", cm.Name, cm.Data["sweep.yaml"])
	}
	var job batchv1.Job
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &job); err != nil {
		t.Fatalf("Job: %v\n%s", err, docs[1])
	}
	s := job.Spec
	if job.APIVersion != "batch/v1" || job.Kind != "Job" || s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion ||
		s.Completions == nil || *s.Completions != 4 || s.Parallelism == nil || *s.Parallelism != 3 {
		t.Fatalf("job %s: %+v", job.Name, s)
	}
	pod := s.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyOnFailure || pod.TerminationGracePeriodSeconds == nil || *pod.TerminationGracePeriodSeconds != 240 || len(pod.Containers) != 1 {
		t.Fatalf("pod spec %+v", pod)
	}
	c := pod.Containers[0]
	if c.Image != "registry.example/lowrank:1" || strings.Join(c.Command, " ") != "lowrank train --config /etc/lowrank/sweep.yaml --threads 2 --no-progress" || c.WorkingDir != "/work" {
		t.Errorf("container %+v", c)
	}
	if len(c.Env) != 1 || c.Env[0].Name != "JOB_COMPLETION_INDEX" || c.Env[0].ValueFrom == nil || c.Env[0].ValueFrom.FieldRef == nil ||
		c.Env[0].ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Errorf("env %+v", c.Env)
	}
	if c.Resources.Requests.Cpu().String() != "2" || c.Resources.Limits.Memory().String() != "2Gi" {
		t.Errorf("resources %+v", c.Resources)
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	var claim, config string
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil {
			claim = v.PersistentVolumeClaim.ClaimName
		}
		if v.ConfigMap != nil {
			config = v.ConfigMap.Name
		}
	}
	if mounts["runs"] != "/work" || mounts["sweep"] != "/etc/lowrank" || claim != "runs-pvc" || config != cm.Name {
		t.Errorf("mounts %v, claim %q, config map %q (want %q)", mounts, claim, config, cm.Name)
	}
}
