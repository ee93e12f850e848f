"""A method added the way the registry says (records/methods.py): this module and one Method entry.

'first-half' weights the first half of the tasks 3 times the rest, renormalized to sum to T.
"""

from workers.balancers import StaticWeights


def first_half(num_tasks: int) -> StaticWeights:
    return StaticWeights(num_tasks, [3.0 if task < max(1, num_tasks // 2) else 1.0 for task in range(num_tasks)])


BUILDERS = {"first-half": lambda config, workload: first_half(len(workload.tasks))}
