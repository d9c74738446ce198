"""camcount: count people and vehicles seen by cameras, as a stream pipeline on Kafka."""

__version__ = "0.1.0"
