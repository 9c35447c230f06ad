package mpi

import "testing"

func TestLaunched(t *testing.T) {
	for _, v := range []string{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK", "PMI_SIZE", "PMIX_RANK", "SLURM_NTASKS"} {
		t.Setenv(v, "")
	}
	if r, s, by := Launched(); r != 0 || s != 1 || by != "" {
		t.Errorf("alone: rank %d of %d by %q", r, s, by)
	}
	t.Setenv("SLURM_NTASKS", "4") // an allocation, no launcher's rank: alone
	if _, s, _ := Launched(); s != 1 {
		t.Errorf("SLURM_NTASKS alone: size %d", s)
	}
	t.Setenv("PMIX_RANK", "3")
	if r, s, by := Launched(); r != 3 || s != 4 || by != "srun (PMIx)" {
		t.Errorf("srun --mpi=pmix: rank %d of %d by %q", r, s, by)
	}
	t.Setenv("OMPI_COMM_WORLD_RANK", "1")
	t.Setenv("OMPI_COMM_WORLD_SIZE", "2")
	if r, s, by := Launched(); r != 1 || s != 2 || by != "mpirun" {
		t.Errorf("mpirun: rank %d of %d by %q", r, s, by)
	}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "1") // mpirun -np 1 in an allocation of 4: one process
	t.Setenv("OMPI_COMM_WORLD_RANK", "0")
	if _, s, _ := Launched(); s != 1 {
		t.Errorf("mpirun -np 1: size %d", s)
	}
}
