//! `kill -9` of the node agent while a backup job runs, then a restart: the Backup still
//! completes (the restarted agent re-adopts its Job and its journal stops the action from
//! running twice), the data restores unchanged, and nothing is left behind.

use cairn_e2e::crash::{Victim, kill_in_the_middle_of_a_backup};
use cairn_e2e::run;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_agent_mid_backup_neither_loses_nor_repeats_the_action() -> anyhow::Result<()> {
    run("crash-agent", async |stack| {
        kill_in_the_middle_of_a_backup(stack, Victim::Agent).await
    })
    .await
}
