//! `kill -9` of the control plane while a backup job runs, then a restart: the restarted control
//! plane re-derives the running action from the Backup's status, the agent recognises it
//! instead of running it again, and the Backup completes with nothing left behind.

use cairn_e2e::crash::{Victim, kill_in_the_middle_of_a_backup};
use cairn_e2e::run;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_control_plane_mid_backup_neither_loses_nor_repeats_the_action()
-> anyhow::Result<()> {
    run("crash-control-plane", async |stack| {
        kill_in_the_middle_of_a_backup(stack, Victim::ControlPlane).await
    })
    .await
}
