// Package train runs fine-tuning: optimizers over adapter parameters, learning
// rate schedules, the training loop with gradient accumulation and clipping,
// evaluation, metrics and signals. It does not parse file formats.
package train
