"""The loss-weighting methods a trial can name, and the facts about each that need no torch.

This is the one registry of methods. Configs check their fields against it
(workers/config.py), the packed engine decides from it which runs may share a
pack (workers/packed.py: can_pack), the CLI lists it, and a results database
keeps its names as Optuna's `method` choices. The balancer that trains a
method is `BUILDERS[name]` of the module its entry names.

Adding a method: write its module under workers/balancers/ with a BUILDERS
entry, and add one Method here (at the end: the order is the Optuna choices
of a new study, and a stored study keeps the choices it started with).
"""

from __future__ import annotations

from dataclasses import dataclass

# The fields of a trial that belong to one method or another; a method's own are in Method.fields,
# and every other one must stay unset (workers/config.py), so that runs that train alike share a key.
METHOD_FIELDS = ("alpha", "weights", "weights_from", "task", "initial_loss", "balancer_lr", "shared_params",
                 "weight_update", "stuck_window")


@dataclass(frozen=True)
class Method:
    """One method's declared facts.

    packing says what a pack of its runs shares: "fixed" (weights that need no
    gradient: fixed, or set from the losses by a balancer per run) or
    "gradnorm" (GradNorm's closed-form update on [K, T]); None: it never packs
    (its weights learn through the network's own loss). Of a packing method's
    fields, those in per_run may differ between the runs of a pack, those in
    shared must be equal across it, and every other one must be at its
    default: a field added to a method later cannot pack until it is
    declared here, so it is refused, never silently ignored.
    """

    name: str
    module: str  # the module whose BUILDERS[name] makes its balancer (workers.balancers.NAME)
    summary: str
    fields: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()  # of fields: set in every config of this method
    packing: str | None = "fixed"
    per_run: tuple[str, ...] = ()
    shared: tuple[str, ...] = ()

    @property
    def pack_defaults(self) -> tuple[str, ...]:
        """Its fields that must be at their default for a run to pack (neither per_run nor shared)."""
        return tuple(name for name in self.fields if name not in self.per_run + self.shared)

    def __post_init__(self) -> None:
        unknown = set(self.fields) - set(METHOD_FIELDS)
        if unknown or not set(self.needs + self.per_run + self.shared) <= set(self.fields):
            raise ValueError(f"method {self.name!r}: fields must come from METHOD_FIELDS and hold needs/per_run/shared")
        if self.packing not in (None, "fixed", "gradnorm"):
            raise ValueError(f"method {self.name!r}: packing must be None, 'fixed' or 'gradnorm'")


BALANCERS = "workers.balancers"
REGISTRY = {
    method.name: method
    for method in (
        Method("equal", f"{BALANCERS}.static", "w_i = 1 for every task"),
        Method("static", f"{BALANCERS}.static", "fixed weights, renormalized to sum to T",
               fields=("weights",), needs=("weights",), per_run=("weights",)),
        Method("uncertainty", f"{BALANCERS}.uncertainty", "homoscedastic uncertainty weighting (Kendall et al. 2018)",
               fields=("balancer_lr",), per_run=("balancer_lr",)),
        Method("gradnorm", f"{BALANCERS}.gradnorm", "GradNorm (Chen et al. 2018)",
               fields=("alpha", "initial_loss", "balancer_lr", "shared_params", "weight_update", "stuck_window"),
               packing="gradnorm", per_run=("alpha",), shared=("balancer_lr",)),
        Method("gradnorm-static", f"{BALANCERS}.static", "static weights copied from a GradNorm run's E_t[w]",
               fields=("weights", "weights_from"), per_run=("weights", "weights_from")),
        Method("single-task", f"{BALANCERS}.static", "one task alone: w = one-hot(task)",
               fields=("task",), needs=("task",), per_run=("task",)),
        Method("dwa", f"{BALANCERS}.dwa", "dynamic weight average (Liu et al. 2019)"),
        Method("rlw", f"{BALANCERS}.rlw", "random loss weighting (Lin et al. 2022)"),
        Method("famo", f"{BALANCERS}.famo", "fast adaptive multitask optimization (Liu et al. 2023)",
               fields=("balancer_lr",), per_run=("balancer_lr",)),
        Method("inverse-initial-loss", f"{BALANCERS}.static", "w_i ∝ 1 / L_i(0), fixed after the first step"),
    )
}
METHODS = tuple(REGISTRY)
