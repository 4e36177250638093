"""rules_keras exporter: turns Keras 3 models into TensorFlow SavedModels."""
