//! The classic GAN unit test (Metz et al., "Unrolled Generative Adversarial Networks", 2016):
//! a mixture of 8 Gaussians on a circle. The same training step as the digits' (D on real and
//! detached fakes, then G with the non-saturating loss, an Adam optimizer each) must learn to
//! put samples on all 8 modes in seconds; a generator that collapses onto a few modes, or
//! that never leaves the centre, fails.

use std::sync::Mutex;

use dl_nn::{Activation, Dense, Layer, Mode, VarStore};
use dl_tensor::{DType, Device, SeededRng, Tensor, Var};
use dl_train::{AdversarialPair, GanStep, StepSettings, TrainStep};

const MODES: usize = 8;
const RADIUS: f32 = 2.0;
const MODE_STD: f32 = 0.05;
const LATENT: usize = 2;

/// A fully connected G and D on points of the plane.
struct PlanePair {
    store: VarStore,
    generator: [Dense; 3],
    discriminator: [Dense; 3],
    noise: Mutex<SeededRng>,
}

impl PlanePair {
    fn new(seed: u64) -> Self {
        let store = VarStore::new(&Device::Cpu, DType::F32, seed);
        let root = store.root();
        let dense =
            |name: &str, inputs, outputs| Dense::new(&root.sub(name), inputs, outputs).unwrap();
        Self {
            generator: [
                dense("g0", LATENT, 128),
                dense("g1", 128, 128),
                dense("g2", 128, 2),
            ],
            discriminator: [
                dense("d0", 2, 128),
                dense("d1", 128, 128),
                dense("d2", 128, 1),
            ],
            noise: Mutex::new(SeededRng::new(seed + 1)),
            store,
        }
    }

    fn variables(&self, prefix: char) -> Vec<(String, Var)> {
        self.store
            .trainable_variables()
            .into_iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .collect()
    }
}

fn run(layers: &[Dense; 3], input: &Tensor, activation: Activation) -> dl_nn::Result<Tensor> {
    let hidden = activation.apply(&layers[0].forward(input, Mode::Train)?)?;
    let hidden = activation.apply(&layers[1].forward(&hidden, Mode::Train)?)?;
    layers[2].forward(&hidden, Mode::Train)
}

impl AdversarialPair for PlanePair {
    fn generate(
        &self,
        noise: &Tensor,
        _labels: Option<&Tensor>,
        _mode: Mode,
    ) -> dl_nn::Result<Tensor> {
        run(&self.generator, noise, Activation::Relu)
    }

    fn discriminate(
        &self,
        samples: &Tensor,
        _labels: Option<&Tensor>,
        _mode: Mode,
    ) -> dl_nn::Result<Tensor> {
        run(&self.discriminator, samples, Activation::LeakyRelu(0.2))
    }

    fn noise(&self, batch: usize) -> dl_nn::Result<Tensor> {
        Ok(self
            .noise
            .lock()
            .unwrap()
            .normal_tensor((batch, LATENT), 0.0, 1.0, &Device::Cpu)?)
    }

    fn random_labels(&self, _batch: usize) -> dl_nn::Result<Option<Tensor>> {
        Ok(None)
    }

    fn generator_variables(&self) -> Vec<(String, Var)> {
        self.variables('g')
    }

    fn discriminator_variables(&self) -> Vec<(String, Var)> {
        self.variables('d')
    }
}

fn mode_centre(mode: usize) -> (f32, f32) {
    let angle = 2.0 * std::f32::consts::PI * mode as f32 / MODES as f32;
    (RADIUS * angle.cos(), RADIUS * angle.sin())
}

/// `batch` points of the mixture.
fn real_batch(rng: &mut SeededRng, batch: usize) -> Tensor {
    let points: Vec<f32> = (0..batch)
        .flat_map(|_| {
            let (x, y) = mode_centre(rng.below(MODES));
            [x + MODE_STD * rng.normal(), y + MODE_STD * rng.normal()]
        })
        .collect();
    Tensor::from_vec(points, (batch, 2), &Device::Cpu).unwrap()
}

/// The share of `points` nearest each mode (within `reach`), and the share near none.
fn coverage(points: &[f32], reach: f32) -> ([f64; MODES], f64) {
    let mut counts = [0usize; MODES];
    let mut stray = 0;
    let count = points.len() / 2;
    for point in points.chunks_exact(2) {
        let nearest = (0..MODES)
            .map(|mode| {
                let (x, y) = mode_centre(mode);
                (
                    mode,
                    ((point[0] - x).powi(2) + (point[1] - y).powi(2)).sqrt(),
                )
            })
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        if nearest.1 < reach {
            counts[nearest.0] += 1;
        } else {
            stray += 1;
        }
    }
    (
        counts.map(|c| c as f64 / count as f64),
        stray as f64 / count as f64,
    )
}

#[test]
fn a_gan_covers_all_eight_modes_of_a_gaussian_mixture() {
    let pair = PlanePair::new(3);
    let settings = StepSettings {
        generator_learning_rate: 1e-3,
        discriminator_learning_rate: 1e-3,
        beta1: 0.5,
        real_target: 1.0,
    };
    let mut step = GanStep::new(&pair, settings).unwrap();
    let mut data = SeededRng::new(11);
    let targets = Tensor::zeros(128, DType::U32, &Device::Cpu).unwrap();
    for _ in 0..1000 {
        let output = step.train(&real_batch(&mut data, 128), &targets).unwrap();
        assert!(output.loss.is_finite());
    }
    let noise = pair.noise(4000).unwrap();
    let points = pair
        .generate(&noise, None, Mode::Eval)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let (shares, stray) = coverage(&points, 0.5);
    let smallest = shares.iter().copied().fold(1.0, f64::min);
    eprintln!("mode shares {shares:?}, {:.1}% near no mode", 100.0 * stray);
    assert!(
        smallest > 0.03 && stray < 0.3,
        "mode shares {shares:?}, {:.1}% near no mode",
        100.0 * stray
    );
}

#[test]
fn the_coverage_measure_flags_a_collapsed_generator() {
    // Every point on mode 0: seven modes empty. Points at the centre: near no mode.
    let (x, y) = mode_centre(0);
    let collapsed: Vec<f32> = (0..100).flat_map(|_| [x, y]).collect();
    let (shares, stray) = coverage(&collapsed, 0.5);
    assert_eq!(shares[0], 1.0);
    assert_eq!(shares.iter().filter(|&&share| share == 0.0).count(), 7);
    assert_eq!(stray, 0.0);
    let (_, stray) = coverage(&[0.0; 200], 0.5);
    assert_eq!(stray, 1.0);
}
