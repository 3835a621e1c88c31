module bgpflat.local/kube-apiserver-build

go 1.25.0
