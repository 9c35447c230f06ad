// Package augment holds seeded transforms of training data: every variant
// is a pure function of (seed, epoch, example index), independent of
// threads and batch composition, so a resumed run sees the same variants
// and each epoch sees new ones.
//
// Token-level transforms (Tokens) implement data.Transform: train wires
// them into the batcher, and data never imports this package. Embedding
// noise (NEFTune) cannot pass through data, which sees tokens; it is an
// input of the model's batch (model.Batch.Noise) that train sets.
//
// Validation and eval data are never augmented.
package augment
