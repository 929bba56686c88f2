//! The fuzz corpus seeds of the compressed-model reader (written by `fuzz/seeds.py`, in Python,
//! independently of this crate's writers) load as the models they describe: the readers accept
//! what another implementation of the formats writes, the ensemble bundle included.

use std::path::Path;

#[test]
fn the_python_written_seeds_load_and_agree() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/compressed_model");
    let seeds = ["logreg.int8.safetensors", "logreg.dlc"];
    let bundle = "ensemble.safetensors";
    if !corpus.join(bundle).exists() {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds.py");
        let written = std::process::Command::new("python3").arg(&script).status();
        if !matches!(written, Ok(status) if status.success()) {
            eprintln!("skipped: python3 could not run fuzz/seeds.py to write the seeds");
            return Ok(());
        }
    }
    let image = dl_tensor::Tensor::ones(
        (1, 1, 28, 28),
        dl_tensor::DType::F32,
        &dl_tensor::Device::Cpu,
    )?;
    let mut outputs = Vec::new();
    for seed in seeds {
        let path = corpus.join(seed);
        let bytes = std::fs::read(&path)?;
        let loaded = dl_compress::int8_classifier_from_bytes(&path, &bytes)?
            .ok_or_else(|| format!("{seed} is not read as an int8 model"))?;
        outputs.push(loaded.model.forward(&image)?.to_vec2::<f32>()?);
    }
    // the same weights (half pruned) in both formats give the same logits
    assert_eq!(outputs[0], outputs[1]);
    // the bundle of the two: the mean of two equal distributions is that distribution
    let path = corpus.join(bundle);
    let loaded =
        dl_compress::classifier_from_bytes(&path, &std::fs::read(&path)?, &dl_tensor::Device::Cpu)?;
    assert_eq!(loaded.description(), "ensemble, mean of 2: logreg, logreg");
    let combined = dl_nn::softmax(&loaded.layer().forward(&image, dl_nn::Mode::Eval)?)?;
    let single = dl_nn::softmax(&dl_tensor::Tensor::new(
        outputs[0].clone(),
        &dl_tensor::Device::Cpu,
    )?)?;
    let difference = (combined - single)?.abs()?.max_all()?.to_scalar::<f32>()?;
    assert!(
        difference < 1e-6,
        "the bundle's probabilities differ by {difference}"
    );
    Ok(())
}
