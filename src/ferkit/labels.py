"""The seven FER2013 expressions, in the data set's label order (0..6)."""

CLASS_NAMES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NUM_CLASSES = len(CLASS_NAMES)
IMAGE_SIZE = 48  # FER2013 faces are 48x48 grayscale

# Faces of each class in the Training split a model learnt from, by its labels (calibration.json, else train_config),
# for a model whose run wrote no `class_counts` of its own (the bundled ones, runs before 2026-12-06):
# FER2013's own labels, or FER+'s majority vote over these seven (28,224 faces). A uniform prior divides a
# model's probabilities by these shares (`--uniform-prior`).
TRAINING_COUNTS = {
    "fer2013": (3995, 436, 4097, 7215, 4830, 3171, 4965),
    "ferplus": (2467, 191, 652, 7528, 3515, 3562, 10309),
}
