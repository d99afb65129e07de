"""Version of the pretraining recipe (room count, episodes, epochs defaults): part of the
base model asset's code version, so a changed recipe rebuilds the base model.

recipe-3: 480 homes x 10 episodes per activity, 8 epochs, each home with its own device drawn
from the device prior and its own simulated calibration context (twin-2.0, features-3);
recipe-2: 576 rooms x 12 episodes, 10 epochs (twin-1.1); recipe-1: 192 rooms, 25 epochs.
"""

PRETRAIN_RECIPE = "recipe-3"
