module bgpflat.local/etcd-build

go 1.25.0
