"""Decision rules: predicted quality + model costs + one knob -> a model per prompt.

"A router predicts, a policy decides" (DESIGN.md). Policies register by name and are built with
`make_policy`; `decide` is the one decision function every caller uses (`rank` for fallback
orders, `sweep_choices` for curves); every policy sweeps its knob from the cheap end to the
quality end with `Policy.knob_grid`; `calibrate` picks the knob for a target.
"""

from codyn.policy.affordability import AffordabilityPolicy
from codyn.policy.base import (
    POLICIES,
    Policy,
    make_policy,
    policy_class,
    policy_config,
    policy_param_names,
    register_policy,
)
from codyn.policy.budget import BudgetPolicy
from codyn.policy.calibrate import (
    Calibration,
    GuaranteedCalibration,
    calibrate,
    calibrate_with_guarantee,
)
from codyn.policy.cascade import CascadePolicy, simulate_cascade
from codyn.policy.decision import decide, full_grid, rank, sweep_choices
from codyn.policy.fixed import FixedPolicy
from codyn.policy.threshold import ThresholdPolicy
from codyn.policy.tiers import TiersPolicy
from codyn.policy.utility import UtilityPolicy

__all__ = [
    "POLICIES",
    "AffordabilityPolicy",
    "BudgetPolicy",
    "Calibration",
    "CascadePolicy",
    "FixedPolicy",
    "GuaranteedCalibration",
    "Policy",
    "ThresholdPolicy",
    "TiersPolicy",
    "UtilityPolicy",
    "calibrate",
    "calibrate_with_guarantee",
    "decide",
    "full_grid",
    "make_policy",
    "policy_class",
    "policy_config",
    "policy_param_names",
    "rank",
    "register_policy",
    "simulate_cascade",
    "sweep_choices",
]
