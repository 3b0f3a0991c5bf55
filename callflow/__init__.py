"""callflow: Asterisk ARI/AGI IVR and call-flow controller for numi.support."""
__version__ = "0.1.0"
