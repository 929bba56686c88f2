//! temporary benchmark
mod model;

use std::time::Instant;

use dl_nn::{Loss, VarStore};
use dl_optim::{Adam, AdamConfig, ProgressMode, Trainer};
use dl_tensor::{DType, Device};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let text = std::fs::read_to_string("/work/shared/datasets/tinyshakespeare/input.txt").unwrap();
    let tokenizer = dl_data::Tokenizer::char_level(&text).unwrap();
    let tokens = tokenizer.encode(&text).unwrap();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (hidden, layers, seq, batch, steps) = (args[0], args[1], args[2], args[3], args[4]);
    let windows =
        dl_data::TextWindows::new(std::path::Path::new("x"), tokens, seq, batch, 1).unwrap();
    let store = VarStore::new(&Device::Cpu, DType::F32, 1);
    let model = model::TextModel::new(
        &store,
        model::ModelConfig {
            vocab_size: tokenizer.vocab_size(),
            embedding: 64,
            hidden,
            layers,
            dropout: 0.0,
        },
    )
    .unwrap();
    let mut trainer = Trainer::new(Box::new(
        Adam::new(AdamConfig::default().learning_rate(2e-3)).unwrap(),
    ))
    .loss(Loss::CrossEntropy)
    .epochs(1)
    .clip_norm(5.0)
    .progress(ProgressMode::Quiet);
    trainer
        .fit(&model, &store, |e| windows.epoch_batches(e, 2))
        .unwrap();
    let start = Instant::now();
    let mut trainer = Trainer::new(Box::new(
        Adam::new(AdamConfig::default().learning_rate(2e-3)).unwrap(),
    ))
    .loss(Loss::CrossEntropy)
    .epochs(1)
    .clip_norm(5.0)
    .progress(ProgressMode::Quiet);
    let h = trainer
        .fit(&model, &store, |e| windows.epoch_batches(e, steps))
        .unwrap();
    let s = start.elapsed().as_secs_f64();
    println!("hidden {hidden} layers {layers} seq {seq} batch {batch}: {:.3} s/step, {:.0} tokens/s, loss {:.3}", s / steps as f64, (steps * seq * batch) as f64 / s, h.last().unwrap().train_loss);
    // generation step speed
    let mut state = model.zero_state(1).unwrap();
    let id = dl_tensor::Tensor::new(&[1u32], &Device::Cpu).unwrap();
    let start = Instant::now();
    for _ in 0..500 {
        let (l, st) = model.step(&id, &state).unwrap();
        let _v = l.squeeze(0).unwrap().to_vec1::<f32>().unwrap();
        state = st;
    }
    println!(
        "candle step: {:.0} steps/s",
        500.0 / start.elapsed().as_secs_f64()
    );
}
