# The database under docs/results/ that holds each study behind docs/results.md (sourced by
# run-results.sh and report-results.sh): results_db STUDY prints its name without .db.
results_db() {
  case $1 in
    mm-v3-alpha|mm-v3-fig4-uniform) echo multimnist-v3 ;;  # results v3 (best validation step): trained at 19e17fa
    mm-v3-search) echo multimnist-v3c ;;  # trained at 8eca013 (proposals and the CPU model recorded, schema 6): mm-v3-alpha copied in
    mm-v3-*) echo multimnist-v3b ;;  # trained at 7d4764f (per-run convolutions, checkpoints): mm-v3-alpha copied in
    digits-v3-*) echo digits-v3 ;;
    toy*-v3-*) echo toy-v3 ;;
    mm-*) echo multimnist ;;
    digits-*) echo digits ;;
    *) echo toy ;;
  esac
}
