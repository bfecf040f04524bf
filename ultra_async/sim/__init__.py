"""The embedded OpenAI/Azure-compatible simulator: rate limits, faults, latency, counters."""

from .buckets import RateLimiter, RateRule, TokenBucket
from .counters import Counter, Stats
from .faults import FAULT_KINDS, MAX_HANG_S, FaultKind, FaultPicker, FaultRule
from .latency import Latency
from .responders import Responder, brain_available, brain_responder, default_responder
from .serve import add_serve_sim_arguments, parse_fault_rules, run_serve_sim, serve_forever
from .server import ANONYMOUS, SimServer
from .setup import SIM_BURST, SimSetup, fake_secret, sim_setup_from_config

__all__ = [
    "ANONYMOUS",
    "FAULT_KINDS",
    "MAX_HANG_S",
    "SIM_BURST",
    "Counter",
    "FaultKind",
    "FaultPicker",
    "FaultRule",
    "Latency",
    "RateLimiter",
    "RateRule",
    "Responder",
    "SimServer",
    "SimSetup",
    "Stats",
    "TokenBucket",
    "add_serve_sim_arguments",
    "brain_available",
    "brain_responder",
    "default_responder",
    "fake_secret",
    "parse_fault_rules",
    "run_serve_sim",
    "serve_forever",
    "sim_setup_from_config",
]
