// Package checkpoints reads and writes what training produces and consumes on
// disk: PEFT adapters (adapter_config.json + adapter_model.safetensors, as
// Hugging Face PEFT writes them), and, later, training state and exports.
// Every file is written to a temporary name, synced and renamed, so an
// interrupted write never leaves a damaged file under the final name.
//
// The raw formats are the leaf packages checkpoints/safetensors and
// checkpoints/gguf.
package checkpoints
