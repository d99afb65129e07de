"""Version of the pretraining recipe (room count, episodes, epochs defaults): part of the
base model asset's code version, so a changed recipe rebuilds the base model.

recipe-2: 576 rooms x 12 episodes per activity, 10 epochs, simulated in 2 processes
(recipe-1: 192 rooms, 25 epochs).
"""

PRETRAIN_RECIPE = "recipe-2"
