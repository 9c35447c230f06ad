package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/lowrank/lowrank/train"
)

// emitOptions say how a sweep's job is written (lowrank sweep --emit).
type emitOptions struct {
	parallel, threads       int
	time, mem, partition    string
	name, image, pvc, mount string
	grace                   int
}

// resolve fills the defaults shared by both schedulers.
func (o *emitOptions) resolve(sw *train.Sweep) error {
	n := len(sw.Tasks)
	if o.parallel < 0 {
		return fmt.Errorf("--parallel %d: want a positive count", o.parallel)
	}
	if o.parallel == 0 || o.parallel > n {
		o.parallel = n
	}
	if o.threads < 0 {
		return fmt.Errorf("--threads %d: want a positive count", o.threads)
	}
	if o.threads == 0 {
		o.threads = sw.Tasks[0].Config.Threads
	}
	if o.threads == 0 {
		o.threads = 4
	}
	if o.name == "" {
		o.name = "lowrank-" + strings.TrimSuffix(filepath.Base(sw.Path), filepath.Ext(sw.Path))
	}
	return nil
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-=:,+@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// emitSlurm writes an sbatch array script running every task of sw: this
// binary, the sweep file and the working directory by absolute path, so
// the file's relative paths mean what they mean here.
func emitSlurm(sw *train.Sweep, o emitOptions) (string, error) {
	if err := o.resolve(sw); err != nil {
		return "", err
	}
	bin, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("this program's path: %v", err)
	}
	file, err := filepath.Abs(sw.Path)
	if err != nil {
		return "", err
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("#!/bin/bash")
	p("# %d lowrank runs from %s (lowrank sweep --emit slurm); submit with sbatch.", len(sw.Tasks), file)
	p("# Task I trains into %s/task-I, resumes it if it was interrupted or requeued, skips it if done.", sw.Out)
	p("#SBATCH --job-name=%s", o.name)
	p("#SBATCH --array=0-%d%%%d", len(sw.Tasks)-1, o.parallel)
	p("#SBATCH --cpus-per-task=%d", o.threads)
	p("#SBATCH --ntasks=1")
	p("#SBATCH --requeue")
	p("#SBATCH --open-mode=append")
	p("#SBATCH --signal=B:TERM@120")
	p("#SBATCH --chdir=%s", wd)
	p("#SBATCH --output=slurm-%s-%%A_%%a.out", o.name)
	if o.time != "" {
		p("#SBATCH --time=%s", o.time)
	}
	if o.mem != "" {
		p("#SBATCH --mem=%s", o.mem)
	}
	if o.partition != "" {
		p("#SBATCH --partition=%s", o.partition)
	}
	p("")
	p("# exec: lowrank is the batch shell itself, so the TERM Slurm sends 120 s before the end")
	p("# (time limit, requeue, preemption) reaches it: it saves a checkpoint and exits.")
	p(`exec %s train --config %s --task-index "$SLURM_ARRAY_TASK_ID" --threads %d --no-progress`, shellQuote(bin), shellQuote(file), o.threads)
	return b.String(), nil
}

// The Kubernetes objects emitK8s writes: the fields it sets, in the API's
// names (the test decodes the output strictly into k8s.io/api's types).
type (
	k8sMeta struct {
		Name   string            `yaml:"name,omitempty"`
		Labels map[string]string `yaml:"labels,omitempty"`
	}
	k8sConfigMap struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   k8sMeta           `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`
	}
	k8sJob struct {
		APIVersion string     `yaml:"apiVersion"`
		Kind       string     `yaml:"kind"`
		Metadata   k8sMeta    `yaml:"metadata"`
		Spec       k8sJobSpec `yaml:"spec"`
	}
	k8sJobSpec struct {
		CompletionMode string      `yaml:"completionMode"`
		Completions    int         `yaml:"completions"`
		Parallelism    int         `yaml:"parallelism"`
		BackoffLimit   int         `yaml:"backoffLimit"`
		Template       k8sTemplate `yaml:"template"`
	}
	k8sTemplate struct {
		Metadata k8sMeta    `yaml:"metadata"`
		Spec     k8sPodSpec `yaml:"spec"`
	}
	k8sPodSpec struct {
		RestartPolicy                 string         `yaml:"restartPolicy"`
		TerminationGracePeriodSeconds int            `yaml:"terminationGracePeriodSeconds"`
		Containers                    []k8sContainer `yaml:"containers"`
		Volumes                       []k8sVolume    `yaml:"volumes"`
	}
	k8sContainer struct {
		Name         string        `yaml:"name"`
		Image        string        `yaml:"image"`
		Command      []string      `yaml:"command"`
		WorkingDir   string        `yaml:"workingDir"`
		Env          []k8sEnv      `yaml:"env"`
		Resources    k8sResources  `yaml:"resources"`
		VolumeMounts []k8sVolMount `yaml:"volumeMounts"`
	}
	k8sEnv struct {
		Name      string       `yaml:"name"`
		ValueFrom k8sValueFrom `yaml:"valueFrom"`
	}
	k8sValueFrom struct {
		FieldRef struct {
			FieldPath string `yaml:"fieldPath"`
		} `yaml:"fieldRef"`
	}
	k8sResources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	}
	k8sVolMount struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly,omitempty"`
	}
	k8sVolume struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap,omitempty"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim,omitempty"`
	}
)

// emitK8s writes a ConfigMap holding the sweep file and an Indexed Job
// with a pod per task: the volume claim mounted as the working directory
// (the file's relative paths resolve there), the index from
// JOB_COMPLETION_INDEX, a grace period for the checkpoint SIGTERM starts.
func emitK8s(sw *train.Sweep, o emitOptions) (string, error) {
	if err := o.resolve(sw); err != nil {
		return "", err
	}
	if o.image == "" {
		return "", fmt.Errorf("--emit k8s needs --image: the container image that holds lowrank")
	}
	if o.grace <= 0 {
		return "", fmt.Errorf("--grace %d: want seconds > 0", o.grace)
	}
	if filepath.IsAbs(sw.Out) {
		return "", fmt.Errorf("%s: out %s is absolute: in the pods, paths resolve on the volume mounted at %s (--mount); give out, data and model relative to it", sw.Path, sw.Out, o.mount)
	}
	raw, err := os.ReadFile(sw.Path)
	if err != nil {
		return "", err
	}
	name := strings.ToLower(strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, o.name))
	labels := map[string]string{"app.kubernetes.io/name": "lowrank", "lowrank/sweep": name}
	cm := k8sConfigMap{APIVersion: "v1", Kind: "ConfigMap", Metadata: k8sMeta{Name: name + "-sweep", Labels: labels},
		Data: map[string]string{"sweep.yaml": string(raw)}}
	job := k8sJob{APIVersion: "batch/v1", Kind: "Job", Metadata: k8sMeta{Name: name, Labels: labels}}
	n := len(sw.Tasks)
	job.Spec = k8sJobSpec{CompletionMode: "Indexed", Completions: n, Parallelism: o.parallel, BackoffLimit: 3 * n}
	res := map[string]string{"cpu": fmt.Sprint(o.threads)}
	if o.mem != "" {
		res["memory"] = o.mem
	}
	ctr := k8sContainer{Name: "train", Image: o.image, WorkingDir: o.mount,
		Command:      []string{"lowrank", "train", "--config", "/etc/lowrank/sweep.yaml", "--threads", fmt.Sprint(o.threads), "--no-progress"},
		Resources:    k8sResources{Requests: res, Limits: res},
		VolumeMounts: []k8sVolMount{{Name: "runs", MountPath: o.mount}, {Name: "sweep", MountPath: "/etc/lowrank", ReadOnly: true}}}
	env := k8sEnv{Name: "JOB_COMPLETION_INDEX"}
	env.ValueFrom.FieldRef.FieldPath = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
	ctr.Env = []k8sEnv{env}
	runs := k8sVolume{Name: "runs", PersistentVolumeClaim: &struct {
		ClaimName string `yaml:"claimName"`
	}{o.pvc}}
	sweepVol := k8sVolume{Name: "sweep", ConfigMap: &struct {
		Name string `yaml:"name"`
	}{cm.Metadata.Name}}
	job.Spec.Template = k8sTemplate{Metadata: k8sMeta{Labels: labels}, Spec: k8sPodSpec{RestartPolicy: "OnFailure",
		TerminationGracePeriodSeconds: o.grace, Containers: []k8sContainer{ctr}, Volumes: []k8sVolume{runs, sweepVol}}}
	var b strings.Builder
	fmt.Fprintf(&b, "# %d lowrank runs from %s (lowrank sweep --emit k8s): kubectl apply -f this file.\n", n, sw.Path)
	fmt.Fprintf(&b, "# Task I trains into %s/task-I under %s on volume claim %s; a restarted pod resumes it.\n", sw.Out, o.mount, o.pvc)
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	for _, obj := range []any{cm, job} {
		if err := enc.Encode(obj); err != nil {
			return "", err
		}
	}
	if err := enc.Close(); err != nil {
		return "", err
	}
	return b.String(), nil
}
