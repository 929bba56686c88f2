//! Course §2.1–§2.2 and §4.1: what one neuron cannot do, a hidden layer can. A small multilayer
//! perceptron, 2 inputs → 8 tanh units → 2 classes, learns XOR with the `Trainer` and Adam.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release -p dl-examples --example 05-xor-mlp
//! ```
//!
//! XOR is not linearly separable, so a single neuron fails at it
//! (`cargo run --release -p dl-examples --example 03-neuron` shows this). The hidden layer maps the four points
//! into a space where they are separable: each tanh unit draws one line, and the output layer
//! combines the half-planes. The model is the course's Keras recipe in miniature:
//! `Sequential([Dense(8, activation='tanh'), Dense(2, activation='softmax')])`, trained with
//! `optimizer='adam'` and `loss='sparse_categorical_crossentropy'`.

use dl_nn::{Activation, Loss, Sequential, VarStore};
use dl_optim::{Adam, AdamConfig};
use dl_tensor::{accuracy, DType, Device, Tensor};
use dl_train::{ProgressMode, Trainer};

const HIDDEN_UNITS: usize = 8;
const LEARNING_RATE: f64 = 0.05;
const EPOCHS: usize = 300;
const REPORT_EVERY: usize = 30;
const SEED: u64 = 3;

/// The four XOR cases and their labels.
const INPUTS: [[f32; 2]; 4] = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]];
const LABELS: [u32; 4] = [0, 1, 1, 0];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = Device::Cpu;
    let inputs = Tensor::new(&INPUTS, &device)?;
    let labels = Tensor::new(&LABELS, &device)?;

    let store = VarStore::new(&device, DType::F32, SEED);
    let model = Sequential::builder(&store.root(), &[2])
        .dense(HIDDEN_UNITS, Activation::Tanh)?
        .dense(2, Activation::Softmax)?
        .build();
    println!("{}", model.summary());

    let optimizer = Adam::new(AdamConfig::default().learning_rate(LEARNING_RATE))?;
    let mut trainer = Trainer::new(Box::new(optimizer))
        .loss(Loss::CrossEntropy)
        .epochs(EPOCHS)
        .progress(ProgressMode::Quiet);
    // One batch of all four examples per epoch: full-batch training.
    let history = trainer.fit(&model, &store, |_epoch| {
        vec![(inputs.clone(), labels.clone())]
    })?;

    println!("training with Adam (η = {LEARNING_RATE}), cross-entropy loss, {EPOCHS} epochs of one batch:");
    for record in history
        .epochs
        .iter()
        .filter(|record| record.epoch == 1 || record.epoch % REPORT_EVERY == 0)
    {
        println!(
            "  epoch {:>3}: loss {:.5}  accuracy {:>5.1}%",
            record.epoch,
            record.train_loss,
            100.0 * record.train_accuracy.unwrap_or(0.0)
        );
    }

    let probabilities = model.predict(&inputs)?;
    let rows: Vec<Vec<f32>> = probabilities.to_vec2()?;
    println!("\ntruth table (after training):");
    println!("  x1  x2 | XOR | P(0)    P(1)   | predicted");
    for ((pair, &label), row) in INPUTS.iter().zip(&LABELS).zip(&rows) {
        let predicted = u32::from(row[1] > row[0]);
        println!(
            "  {:>2}  {:>2} | {label:>3} | {:.4}  {:.4} | {predicted:>3} {}",
            pair[0],
            pair[1],
            row[0],
            row[1],
            if predicted == label { "ok" } else { "WRONG" }
        );
    }
    let share = accuracy(&probabilities, &labels)?;
    println!("accuracy: {:.0}%", 100.0 * share);

    if share < 1.0 {
        return Err(format!(
            "the MLP should learn XOR perfectly, got {:.0}%",
            100.0 * share
        )
        .into());
    }
    Ok(())
}
