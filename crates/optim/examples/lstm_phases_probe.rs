use dl_autograd::Gradients;
use dl_nn::{cross_entropy, Dense, Embedding, Layer, Lstm, LstmConfig, Mode, VarStore};
use dl_optim::{Adam, AdamConfig, Optimizer};
use dl_tensor::{DType, Device, SeededRng, Tensor};
use std::time::Instant;
type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn main() -> Result<()> {
    dl_tensor::threads::configure(Some(2));
    let hidden: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().unwrap())
        .unwrap_or(128);
    let store = VarStore::new(&Device::Cpu, DType::F32, 0);
    let root = store.root();
    let embedding = Embedding::new(&root.sub("embedding"), 65, 64)?;
    let lstm = Lstm::new(&root.sub("lstm"), LstmConfig::new(64, hidden))?;
    let head = Dense::new(&root.sub("head"), hidden, 65)?;
    let vars = store.trainable_variables();
    let mut optimizer = Adam::new(AdamConfig::default().learning_rate(2e-3))?;
    let mut rng = SeededRng::new(1);
    let mut times = vec![Vec::new(); 5];
    for iter in 0..60 {
        let ids: Vec<u32> = (0..3200).map(|_| rng.below(65) as u32).collect();
        let targets: Vec<u32> = (0..3200).map(|_| rng.below(65) as u32).collect();
        let ids = Tensor::from_vec(ids, (32, 100), &Device::Cpu)?;
        let targets = Tensor::from_vec(targets, (32, 100), &Device::Cpu)?;
        let t0 = Instant::now();
        let (outputs, _) = lstm.forward_embedded(&embedding, &ids, None, Mode::Train)?;
        let t1 = Instant::now();
        let logits = head.forward(&outputs, Mode::Train)?;
        let loss = cross_entropy(&logits, &targets)?;
        let t2 = Instant::now();
        let gradients = Gradients::compute(&loss, vars.iter().map(|(n, v)| (n.as_str(), v)))?;
        let t3 = Instant::now();
        optimizer.step(&gradients)?;
        drop(gradients);
        drop(loss);
        drop(logits);
        drop(outputs);
        let t4 = Instant::now();
        if iter >= 10 {
            for (i, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t0, t4)]
                .iter()
                .enumerate()
            {
                times[i].push((*b - *a).as_secs_f64() * 1e3);
            }
        }
    }
    for (name, mut t) in ["lstm fwd", "head+loss", "backward", "adam", "total"]
        .iter()
        .zip(times)
    {
        t.sort_by(f64::total_cmp);
        println!(
            "H{hidden} {name:10} min {:.2} ms  median {:.2} ms",
            t[0],
            t[t.len() / 2]
        );
    }
    Ok(())
}
