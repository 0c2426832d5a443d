//! Two control planes electing a leader, one agent, a backup in flight: the leader is killed
//! (`kill -9`) or frozen past its lease (SIGSTOP, then SIGCONT); the backup completes on the
//! new leader, the job runs exactly once, and the agent ends up on the new leader alone.

use cairn_e2e::ha::{Loss, lose_the_leader_in_the_middle_of_a_backup, options};
use cairn_e2e::stack::run_with;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_mid_backup_moves_the_agent_and_completes_the_backup_once()
-> anyhow::Result<()> {
    run_with("ha-kill", options, async |stack| {
        lose_the_leader_in_the_middle_of_a_backup(stack, Loss::Kill).await
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_frozen_past_its_lease_steps_down_when_resumed_and_the_backup_completes_once()
-> anyhow::Result<()> {
    run_with("ha-freeze", options, async |stack| {
        lose_the_leader_in_the_middle_of_a_backup(stack, Loss::Freeze).await
    })
    .await
}
