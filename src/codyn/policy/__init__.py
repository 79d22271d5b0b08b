"""Decision rules: predicted quality + model costs + one knob -> a model per prompt.

"A router predicts, a policy decides" (DESIGN.md). Every policy sweeps its knob from the cheap
end to the quality end with `Policy.knob_grid`; `calibrate` picks the knob for a target.
"""

from codyn.policy.affordability import AffordabilityPolicy
from codyn.policy.base import Policy
from codyn.policy.calibrate import Calibration, calibrate
from codyn.policy.threshold import ThresholdPolicy
from codyn.policy.tiers import TiersPolicy
from codyn.policy.utility import UtilityPolicy

__all__ = [
    "AffordabilityPolicy",
    "Calibration",
    "Policy",
    "ThresholdPolicy",
    "TiersPolicy",
    "UtilityPolicy",
    "calibrate",
]
