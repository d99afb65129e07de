"""ConfigurableResources: the seams where backends plug in."""

from resources.storage import FactoryStorage

__all__ = ["FactoryStorage"]
