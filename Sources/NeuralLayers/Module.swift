// NeuralLayers: scaffolding, replaced as the module is written.
