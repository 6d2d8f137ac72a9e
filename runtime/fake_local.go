package runtime

import "fmt"

// DeleteLocalVolume is Containerd.DeleteLocalVolume for the Fake, which
// keeps no volume data: a claim's volume is new whenever no pod used it
// since its deletion. The call is recorded ("DeleteLocalVolume NS/CLAIM",
// Calls), so a test can order it against the RunPod calls of the claim's
// pods. Unlike Containerd, the Fake refuses while a pod it holds (running
// or stopped, until RemovePod) mounts the claim: a caller that deletes a
// volume in use is a bug the tests should see.
func (f *Fake) DeleteLocalVolume(namespace, claim string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.pods {
		if p.spec.Key.Namespace != namespace {
			continue
		}
		for _, v := range p.spec.Volumes {
			if v.Local != nil && v.Local.Claim == claim {
				return fmt.Errorf("delete local volume %s/%s: in use by pod %s (uid %s)", namespace, claim, p.spec.Key.Name, p.spec.Key.UID)
			}
		}
	}
	f.calls = append(f.calls, "DeleteLocalVolume "+namespace+"/"+claim)
	return nil
}
