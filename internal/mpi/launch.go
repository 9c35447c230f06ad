package mpi

import (
	"os"
	"strconv"
)

// Launched says whether this process was started as one of several ranks
// by an MPI launcher (mpirun of Open MPI or MPICH, srun with PMI or PMIx,
// the MPI Operator's mpirun), from the environment they set, and which.
func Launched() (rank, size int, by string) {
	for _, v := range [][3]string{
		{"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "mpirun"},
		{"PMI_RANK", "PMI_SIZE", "an MPI launcher (PMI)"},
		{"PMIX_RANK", "SLURM_NTASKS", "srun (PMIx)"},
	} {
		r, err1 := strconv.Atoi(os.Getenv(v[0]))
		s, err2 := strconv.Atoi(os.Getenv(v[1]))
		switch {
		case err1 != nil || err2 != nil:
			continue
		case s > 1:
			return r, s, v[2]
		default: // this launcher started one process (mpirun -np 1 in an allocation of more)
			return 0, 1, ""
		}
	}
	return 0, 1, ""
}
