package coordinator

import (
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// Suffrage of a server in the Raft configuration.
type Suffrage string

const (
	Voter    Suffrage = "voter"
	Nonvoter Suffrage = "nonvoter" // receives the log, does not vote
)

// Member is a server of the Raft configuration.
type Member struct {
	ID       string
	Addr     string // Raft address
	Suffrage Suffrage
}

// Configuration returns the latest Raft configuration this server knows
// (committed or not); empty on a server that was never bootstrapped nor
// added to a cluster.
func (s *Server) Configuration() ([]Member, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, raftError(err)
	}
	var out []Member
	for _, sv := range f.Configuration().Servers {
		m := Member{ID: string(sv.ID), Addr: string(sv.Address), Suffrage: Nonvoter}
		if sv.Suffrage == raft.Voter {
			m.Suffrage = Voter
		} else if sv.Suffrage == raft.Staging {
			continue
		}
		out = append(out, m)
	}
	return out, nil
}

// Bootstrap starts a new cluster with members as its first configuration
// (this server must be one of them). It fails with raft's
// ErrCantBootstrap on a server that has Raft state: a server is
// bootstrapped once in its life. Only one server of a new cluster may
// call it, or several with the very same members.
func (s *Server) Bootstrap(members []Member) error {
	cfg := raft.Configuration{}
	self := false
	for _, m := range members {
		sf := raft.Voter
		if m.Suffrage == Nonvoter {
			sf = raft.Nonvoter
		}
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.Addr), Suffrage: sf})
		self = self || m.ID == s.id
	}
	if !self {
		return fmt.Errorf("%w: bootstrap configuration without this server %q", ErrBadOptions, s.id)
	}
	if err := s.raft.BootstrapCluster(cfg).Error(); err != nil {
		return fmt.Errorf("coordinator: bootstrap: %w", err)
	}
	return nil
}

// AddMember adds a server to the configuration, or changes its address
// or suffrage (a non-voter promoted to voter). Leader only (ErrNotLeader
// otherwise); returns once the change is committed or timeout passes.
func (s *Server) AddMember(m Member, timeout time.Duration) error {
	var f raft.IndexFuture
	if m.Suffrage == Voter {
		f = s.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.Addr), 0, timeout)
	} else {
		f = s.raft.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(m.Addr), 0, timeout)
	}
	if err := f.Error(); err != nil {
		return raftError(err)
	}
	return nil
}

// TransferLeadership hands leadership to another voter (a leader about
// to stop), so the cluster need not wait out an election timeout.
func (s *Server) TransferLeadership() error {
	if err := s.raft.LeadershipTransfer().Error(); err != nil {
		return raftError(err)
	}
	return nil
}

// RemoveMember removes a server from the configuration. Leader only.
func (s *Server) RemoveMember(id string, timeout time.Duration) error {
	if err := s.raft.RemoveServer(raft.ServerID(id), 0, timeout).Error(); err != nil {
		return raftError(err)
	}
	return nil
}
