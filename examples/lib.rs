//! dl-examples: the course's concepts as runnable programs, in the column's order. Each is one
//! file that prints what it shows; run one with
//! `cargo run --release -p dl-examples --example NN-name`.
//!
//! | example | course section | what it shows |
//! |---|---|---|
//! | `01-gradient-descent` | §3.1 梯度下降 | w ← w − η ∂L/∂w on a line fit, and what the learning rate does |
//! | `02-backprop-by-hand` | §3.2 反向传播 | the chain rule by hand, checked against autograd and finite differences |
//! | `03-neuron` | §4.1 神经元模型 | one neuron learns AND and OR, and cannot learn XOR |
//! | `04-activations` | §4.2 激活函数 | sigmoid, tanh, ReLU, softmax and their derivatives |
//! | `05-xor-mlp` | §2.1 神经网络 | a hidden layer learns XOR |
//!
//! Later chapters append theirs (the GAN, pruning, saliency, search) in the same numbering.
