"""Hyperspectral classification with few labels: Zhong, Li, Zhang, Zhang, "Generative
adversarial networks and conditional random fields for hyperspectral image classification"
(IEEE Trans. Cybernetics 50(7), 2020; arXiv:1905.04621). One module per idea:

* ``params`` — the spec section ``training.hyperspectral`` (torch-free);
* ``scene`` — the generated scene (linear mixing of smooth endmembers) and few-label splits;
  ``loaders`` — Indian Pines / Pavia University ``.mat`` files from the data folder;
* ``patches`` — spectral-spatial patch volumes; ``cnn3d`` — the 3-D CNN (baseline and
  discriminator); ``gan`` — the semi-supervised GAN; ``crf`` — the dense CRF;
* ``metrics`` — OA, AA, κ and their intervals; ``cell`` — one trained, scored cell;
  ``workload`` / ``report`` — the training workload's steps and report
  (registered in :mod:`faultlab.workers.training.workloads.hyperspectral`).

See docs/hyperspectral.md.
"""
